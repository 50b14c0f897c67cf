"""Rollout under load: continuous traffic (concurrency 8, thousands of requests) while a
new version is added, canaried at 10%, a third is shadowed, the candidate promoted,
rolled back and unloaded. Zero failed requests; no customer switches version except on
promote or rollback. Broken versions are refused while the old one keeps serving."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from serving.settings import Settings
from tests.e2e.conftest import until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CONCURRENCY = 8
POPULATION = 1_500  # customers drawn again and again, so stickiness is seen per customer
MARGIN_S = 0.3  # around an admin call: requests in flight then may see either side


class Load:
    """Concurrent /v1/score traffic in a thread: 1 customer a request, every 5th request 12."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.results: list[
            tuple[float, float, int, dict[int, str]]
        ] = []  # start, end, status, versions
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _worker(self, client: httpx.AsyncClient, seed: int) -> None:
        rng = np.random.default_rng(seed)
        n = 0
        while not self._stop.is_set():
            n += 1
            ids = rng.integers(0, POPULATION, 12 if n % 5 == 0 else 1).tolist()
            start = time.time()
            try:
                r = await client.post("/v1/score", json={"customer_ids": ids})
            except httpx.HTTPError as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
                continue
            end = time.time()
            if r.status_code != 200:
                self.failures.append(f"{r.status_code}: {r.text[:300]}")
                self.results.append((start, end, r.status_code, {}))
                continue
            body = r.json()
            per_row = body.get("churn_version") or [body["model_versions"]["churn"]] * len(ids)
            versions = {i: v for i, v, f in zip(ids, per_row, body["found"]) if f}
            self.results.append((start, end, 200, versions))

    async def _run(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=60) as client:
            await asyncio.gather(*(self._worker(client, s) for s in range(CONCURRENCY)))

    def __enter__(self) -> "Load":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=120)

    def between(self, t0: float, t1: float) -> list[dict[int, str]]:
        return [v for s, e, st, v in list(self.results) if st == 200 and s >= t0 and e <= t1]


def _copy_version(model_dir: Path, source: str, new: str) -> None:
    staging = model_dir / f".{new}.tmp"
    shutil.copytree(model_dir / source, staging)
    staging.rename(model_dir / new)  # atomic, as the exporter writes versions


def _per_customer(answers: list[dict[int, str]]) -> dict[int, set[str]]:
    seen: dict[int, set[str]] = defaultdict(set)
    for answer in answers:
        for customer, version in answer.items():
            seen[customer].add(version)
    return seen


def test_rollout_under_load(
    app_url: str, settings: Settings, admin_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving.cli import app as cli

    monkeypatch.setenv("REENGAGE_TOKEN", admin_headers["Authorization"].split(" ", 1)[1])
    runner = CliRunner()
    admin = httpx.Client(base_url=app_url, headers=admin_headers, timeout=120)
    model_dir = Path(settings.models.repo_path) / "churn"
    versions = sorted((p.name for p in model_dir.iterdir() if p.name.isdigit()), key=int)
    base = versions[-1]
    new, shadow = str(int(base) + 1), str(int(base) + 2)
    windows: list[tuple[str, float, float, dict[str, Any]]] = []

    def call(name: str, fn) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        t0 = time.time()
        answer = fn()
        windows.append((name, t0, time.time(), answer))
        return answer

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = admin.post(path, json=body)
        assert r.status_code == 200, r.text
        return r.json()

    def cli_ok(*args: str) -> dict[str, Any]:
        result = runner.invoke(cli, ["rollout", *args, "--url", app_url])
        assert result.exit_code == 0, result.output
        return {"output": result.output}

    def replicas_have(version: str) -> bool:
        status = admin.get("/v1/admin/rollout/churn").json()
        reps = status["replicas"].values()
        return len(reps) >= 2 and all(version in (r.get("versions") or []) for r in reps)

    with Load(app_url) as load:
        time.sleep(2)
        call("pin", lambda: post("/v1/admin/rollout/churn", {"default": base}))
        time.sleep(2)
        _copy_version(model_dir, base, new)  # 1. add a version: loaded everywhere, no traffic yet
        assert until(lambda: replicas_have(new))
        time.sleep(2)
        call(
            "canary",
            lambda: cli_ok("start", "churn", "--default", base, "--candidate", f"{new}:10"),
        )  # 2.
        time.sleep(8)
        _copy_version(model_dir, base, shadow)
        assert until(lambda: replicas_have(shadow))
        call(
            "shadow",
            lambda: post(
                "/v1/admin/rollout/churn",
                {  # 3. the same split, plus a shadow
                    "default": base,
                    "candidates": [{"version": new, "weight": 10}],
                    "shadow": {"version": shadow},
                },
            ),
        )
        time.sleep(6)
        status = admin.get("/v1/admin/rollout/churn").json()
        call(
            "promote", lambda: cli_ok("promote", "churn", "--force")
        )  # 4. (seconds of decisions: no evidence yet)
        time.sleep(4)
        call("rollback", lambda: cli_ok("rollback", "churn"))  # 5.
        time.sleep(4)
        call("unload", lambda: post(f"/v1/admin/models/churn/versions/{new}/unload", {}))  # 6.
        time.sleep(3)
        end = time.time()

    assert not load.failures, load.failures[:5]
    total = len(load.results)
    assert total >= 2_000, total
    # phases: the stable stretches between admin calls (requests overlapping a call excluded)
    edges = [(w[1] - MARGIN_S, w[2] + MARGIN_S) for w in windows]
    start = load.results[0][0]
    spans = (
        [(start, edges[0][0])]
        + [(edges[i][1], edges[i + 1][0]) for i in range(len(edges) - 1)]
        + [(edges[-1][1], end)]
    )
    phase = {
        name: _per_customer(load.between(*span))
        for name, span in zip(
            ("before", "pinned", "canary", "shadow", "promoted", "rolled_back", "unloaded"), spans
        )
    }
    for name, seen in phase.items():
        switched = {c: v for c, v in seen.items() if len(v) > 1}
        assert not switched, (
            name,
            list(switched.items())[:5],
        )  # one version per customer per phase
    for name in ("pinned", "rolled_back", "unloaded"):
        assert {v for vs in phase[name].values() for v in vs} == {base}, name
    assert {v for vs in phase["promoted"].values() for v in vs} == {new}
    canary = {c: next(iter(v)) for c, v in phase["canary"].items()}
    same = {c: next(iter(v)) for c, v in phase["shadow"].items()}
    assert all(
        canary[c] == same[c] for c in canary.keys() & same.keys()
    )  # adding a shadow moves nobody
    n = len(canary)
    share = sum(v == new for v in canary.values()) / n
    assert n > 300 and abs(share - 0.10) < 4 * np.sqrt(0.09 / n), (share, n)  # binomial tolerance
    assert (
        status["shadow"]
        and status["shadow"]["rows"] > 0
        and status["shadow"]["mean_abs_diff"] < 1e-4
    )
    index = admin.post("/v2/repository/index", json={}).json()
    assert {(r["version"], r["state"]) for r in index if r["name"] == "churn"} >= {
        (new, "UNAVAILABLE"),
        (base, "READY"),
    }
    propagation = [w[3] for w in windows if "propagation_s" in w[3]]
    print(
        json.dumps(
            {
                "requests": total,
                "canary_share": share,
                "customers": n,
                "propagation_s": [p["propagation_s"] for p in propagation],
                "admin_call_s": [round(w[2] - w[1], 2) for w in windows],
            }
        )
    )
    assert all(not p["late_replicas"] for p in propagation)
    post(
        f"/v1/admin/models/churn/versions/{new}/load", {}
    )  # leave the repository as the other tests found it
    for version in (new, shadow):
        shutil.rmtree(model_dir / version)


def test_broken_versions_are_refused_while_the_old_one_serves(
    app_url: str, settings: Settings, admin_headers: dict[str, str]
) -> None:
    admin = httpx.Client(base_url=app_url, headers=admin_headers, timeout=120)
    model_dir = Path(settings.models.repo_path) / "churn"
    current = admin.get("/v1/admin/rollout/churn").json()
    default = (current.get("policy") or {}).get("default") or current["versions"][-1]
    pinned = admin.post(
        "/v1/admin/rollout/churn", json={"default": default}
    )  # newer versions take no traffic
    assert pinned.status_code == 200, pinned.text
    top = max(int(p.name) for p in model_dir.iterdir() if p.name.isdigit())
    corrupt, unfed = str(top + 1), str(top + 2)
    for version in (corrupt, unfed):
        staging = model_dir / f".{version}.tmp"
        shutil.copytree(model_dir / default, staging)
        if version == corrupt:
            for f in staging.glob("model.*"):
                f.write_bytes(b"corrupt")
        else:
            metrics = json.loads((staging / "metrics.json").read_text())
            metrics["features"] = metrics["features"][:-1] + ["no_such_feature"]
            (staging / "metrics.json").write_text(json.dumps(metrics))
        staging.rename(model_dir / version)
    time.sleep(3)  # every replica polled the repository
    try:
        _refuse_broken(app_url, admin, default, corrupt, unfed)
    finally:
        for version in (corrupt, unfed):
            shutil.rmtree(model_dir / version, ignore_errors=True)


def _refuse_broken(
    app_url: str, admin: httpx.Client, default: str, corrupt: str, unfed: str
) -> None:
    for version, cause in ((corrupt, "cannot load"), (unfed, "no_such_feature")):
        r = admin.post(
            "/v1/admin/rollout/churn",
            json={"default": default, "candidates": [{"version": version, "weight": 50}]},
        )
        assert r.status_code == 422 and r.json()["error"]["type"] == "version_refused", r.text
        assert cause in r.json()["error"]["message"]
        answers = [
            httpx.post(
                f"{app_url}/v1/score", json={"customer_ids": list(range(40))}, timeout=30
            ).json()
            for _ in range(6)
        ]
        assert all(
            a["model_versions"]["churn"] == default and "churn_version" not in a for a in answers
        )
