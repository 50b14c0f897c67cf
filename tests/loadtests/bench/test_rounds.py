"""`reengage bench score`'s points: the rotation of targets between rounds, the warm-up
left unrecorded, the longer window when one held too few requests, and our replicas' own
latency for our target only. wrk is replaced by a recorder; no server runs."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.progress import Progress

from loadtests.bench import rounds
from loadtests.bench.rounds import Load, http_rounds, write_scripts
from loadtests.bench.targets import PATHS

URLS = {"ours": "http://o", "hello": "http://o", "plain": "http://p"}


class FakeWrk:
    """Records each run; answers ``requests`` per run from a queue (default: plenty)."""

    def __init__(self, requests: list[int] | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.requests = list(requests or [])

    def __call__(
        self, url: str, script: Path, *, concurrency: int, seconds: float, threads: int
    ) -> dict[str, Any]:
        self.calls.append(
            {"url": url, "script": script, "c": concurrency, "s": seconds, "t": threads}
        )
        n = self.requests.pop(0) if self.requests else 1000
        return {"requests": n, "req_s": n / seconds}


class FakeApp:
    def __init__(self) -> None:
        self.marks = 0

    def mark(self) -> dict[Path, int]:
        self.marks += 1
        return {}

    def summary(self, mark: dict[Path, int]) -> dict[str, Any]:
        return {"app_requests": 7}


def _run(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    wrk: FakeWrk,
    http: list[str],
    *,
    ids: list[int],
    concurrency: list[int],
    warmup: float = 0.0,
    n_rounds: int = 1,
    app: Any = None,
) -> list[dict[str, Any]]:
    monkeypatch.setattr(rounds, "run_wrk", wrk)
    scripts = write_scripts(tmp_path, {n: ['{"customer_ids": [1]}'] for n in ids})
    load = Load(scripts, seconds=2.0, warmup=warmup, rounds=n_rounds, wrk_threads=3)
    with Progress(console=Console(file=io.StringIO())) as progress:
        task = progress.add_task("", total=None)
        return http_rounds(load, URLS, http, ids, concurrency, app, progress, task)


def test_each_round_starts_with_the_next_target(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    http = ["ours", "hello", "plain"]
    points = _run(monkeypatch, tmp_path, FakeWrk(), http, ids=[1, 10], concurrency=[4], n_rounds=3)
    assert len(points) == 2 * 3 * 3
    first = [(p["ids"], p["round"], p["target"]) for p in points[:9]]
    assert [t for _, _, t in first] == [
        *("ours", "hello", "plain"),
        *("hello", "plain", "ours"),
        *("plain", "ours", "hello"),
    ]
    assert {(n, r) for n, r, _ in first} == {(1, 0), (1, 1), (1, 2)}
    assert all(p["ids"] == 10 for p in points[9:])
    assert all(p["pred_s"] == p["req_s"] * p["ids"] for p in points)


def test_warmup_runs_unrecorded_and_a_thin_window_runs_again_longer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wrk = FakeWrk([1000, 7, 500])  # warm-up, a window of fewer than 2 x c, the longer one
    (point,) = _run(monkeypatch, tmp_path, wrk, ["plain"], ids=[100], concurrency=[4], warmup=1.0)
    assert [c["s"] for c in wrk.calls] == [1.0, 2.0, 8.0]
    assert all(c["c"] == 4 and c["t"] == 3 for c in wrk.calls)
    assert {c["url"] for c in wrk.calls} == {"http://p" + PATHS["plain"]}
    assert point["extended"] is True and point["requests"] == 500
    assert point["pred_s"] == pytest.approx(500 / 8.0 * 100)
    enough = FakeWrk([8])
    (point,) = _run(monkeypatch, tmp_path, enough, ["plain"], ids=[100], concurrency=[4])
    assert len(enough.calls) == 1 and "extended" not in point


def test_our_replicas_latency_joins_our_points_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    app = FakeApp()
    points = _run(
        monkeypatch, tmp_path, FakeWrk(), ["ours", "hello"], ids=[1], concurrency=[1], app=app
    )
    by_target = {p["target"]: p for p in points}
    assert by_target["ours"]["app_requests"] == 7 and "app_requests" not in by_target["hello"]
    assert app.marks == 1


def test_scripts_read_their_bodies_file_for_each_path(tmp_path: Path) -> None:
    scripts = write_scripts(tmp_path, {1: ["a", "b"], 10: ["c"]})
    assert set(scripts) == {(n, path) for n in (1, 10) for path in set(PATHS.values())}
    assert (tmp_path / "bodies-1.txt").read_text() == "a\nb\n"
    for (n, path), script in scripts.items():
        text = script.read_text()
        assert f'"{path}"' in text and str(tmp_path / f"bodies-{n}.txt") in text
