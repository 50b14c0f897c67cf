"""`reengage bench score`'s report: ratios to the references at the same point, the
tables and the plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from serving.bench_report import plot_results, print_tables, ratios


def _point(target: str, ids: int, c: int | None, req_s: float) -> dict[str, Any]:
    return {"target": target, "ids": ids, "concurrency": c, "req_s": req_s, "pred_s": req_s * ids,
            "requests": int(req_s), "p50_ms": 1.0 if req_s else None, "p99_ms": 2.0 if req_s else None,
            "errors": 0, "wrk_cpu": None if c is None else 0.25}


def test_ratios_pair_ours_with_the_references_at_the_same_point() -> None:
    points = [_point("ours", 1000, 4, 60.0), _point("hello", 1000, 4, 300.0), _point("plain", 1000, 4, 120.0),
              _point("ort2", 1000, None, 240.0), _point("ort1", 1000, None, 150.0),
              _point("hello", 1000, 1, 999.0),  # another concurrency: must not be used
              _point("ours", 10, 1, 100.0), _point("plain", 10, 1, 0.0),
              _point("ours", 10, 4, 0.0), _point("plain", 10, 4, 50.0), _point("ort2", 10, None, 100.0)]
    got = {(r["ids"], r["concurrency"]): r for r in ratios(points)}
    assert set(got) == {(1000, 4), (10, 1), (10, 4)}
    r = got[1000, 4]
    assert r["ours_over_hello"] == pytest.approx(0.2)
    assert r["ours_over_plain"] == pytest.approx(0.5)
    assert r["ours_over_ort2"] == pytest.approx(60_000 / 240_000)
    assert got[10, 1] == {"ids": 10, "concurrency": 1, "ours_over_hello": None, "ours_over_plain": None,
                          "ours_over_ort2": pytest.approx(1.0)}
    assert got[10, 4]["ours_over_plain"] is None and got[10, 4]["ours_over_ort2"] is None  # ours completed nothing


def test_tables_and_plot(tmp_path: Path) -> None:
    points = [{**_point("ours", 100, 4, 50.0), "app_p50_ms": 0.81, "app_p99_ms": 2.96, "app_requests": 50},
              _point("hello", 100, 4, 200.0), _point("ort2", 100, None, 400.0), _point("ours", 100, 16, 0.0)]
    result = {"meta": {"ids": [100], "concurrency": [4, 16], "cores": 2, "seconds": 1.0, "date": "today"},
              "points": points, "ratios": ratios(points)}
    console = Console(record=True, width=200)
    print_tables(result, console)
    text = console.export_text()
    assert "100 ids per request" in text and "0.25x" in text and "0.12x" in text and "25%" in text
    assert "0.81 / 2.96" in text  # our replicas' own latency beside wrk's
    pytest.importorskip("matplotlib")
    plot_results(result, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = {"meta": {**result["meta"], "concurrency": [16]}, "points": [_point("ours", 100, 16, 0.0)], "ratios": []}
    plot_results(empty, tmp_path / "empty.png")  # no positive value anywhere: still a plot
    assert (tmp_path / "empty.png").stat().st_size > 0
