"""`reengage bench score`'s report: ratios to the references at the same point, the
tables and the plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from loadtests.bench.report import aggregate, plot_results, print_tables, ratios


def _point(target: str, ids: int, c: int | None, req_s: float) -> dict[str, Any]:
    return {
        "target": target,
        "ids": ids,
        "concurrency": c,
        "req_s": req_s,
        "pred_s": req_s * ids,
        "requests": int(req_s),
        "p50_ms": 1.0 if req_s else None,
        "p99_ms": 2.0 if req_s else None,
        "errors": 0,
        "wrk_cpu": None if c is None else 0.25,
    }


def test_ratios_pair_ours_with_the_references_at_the_same_point() -> None:
    points = [
        _point("ours", 1000, 4, 60.0),
        _point("hello", 1000, 4, 300.0),
        _point("plain", 1000, 4, 120.0),
        _point("ort2", 1000, None, 240.0),
        _point("ort1", 1000, None, 150.0),
        _point("hello", 1000, 1, 999.0),  # another concurrency: must not be used
        _point("ours", 10, 1, 100.0),
        _point("plain", 10, 1, 0.0),
        _point("ours", 10, 4, 0.0),
        _point("plain", 10, 4, 50.0),
        _point("ort2", 10, None, 100.0),
    ]
    got = {(r["ids"], r["concurrency"]): r for r in ratios(points)}
    assert set(got) == {(1000, 4), (10, 1), (10, 4)}
    r = got[1000, 4]
    assert r["ours_over_hello"] == pytest.approx(0.2)
    assert r["ours_over_plain"] == pytest.approx(0.5)
    assert r["ours_over_ort2"] == pytest.approx(60_000 / 240_000)
    assert got[10, 1] == {
        "ids": 10,
        "concurrency": 1,
        "ours_over_hello": None,
        "ours_over_plain": None,
        "ours_over_ort2": pytest.approx(1.0),
    }
    assert (
        got[10, 4]["ours_over_plain"] is None and got[10, 4]["ours_over_ort2"] is None
    )  # ours completed nothing


def _round(point: dict[str, Any], r: int, **extra: Any) -> dict[str, Any]:
    return {**point, "round": r, **extra}


def test_rounds_pair_each_ours_with_the_references_of_its_own_round() -> None:
    # the machine drifts: round 1 runs everything twice as fast; paired, every round says 0.5x
    points = [
        _round(_point("ours", 1, 4, 500.0), 0),
        _round(_point("plain", 1, 4, 1000.0), 0),
        _round(_point("ours", 1, 4, 1000.0), 1),
        _round(_point("plain", 1, 4, 2000.0), 1),
        _round(_point("ours", 1, 4, 600.0), 2),
        _round(_point("plain", 1, 4, 1000.0), 2),
        _round(_point("hello", 1, 4, 0.0), 0),
        _point("ort2", 1, None, 2000.0),
    ]
    [r] = ratios(points)
    assert r["ours_over_plain"] == pytest.approx(
        0.5
    )  # median of 0.5, 0.5, 0.6 (unpaired medians: 600/1000)
    assert r["ours_over_plain_range"] == pytest.approx([0.5, 0.6])
    assert (
        r["ours_over_hello"] is None and r["ours_over_hello_range"] is None
    )  # hello answered nothing
    assert r["ours_over_ort2"] == pytest.approx(0.3)  # ORT is measured once: each round against it


def test_aggregate_takes_medians_over_rounds_and_sums_counts() -> None:
    rounds = [
        _round(_point("ours", 1, 1, req_s), r, p99_ms=p99, app_requests=10, ok=int(req_s))
        for r, (req_s, p99) in enumerate([(100.0, 9.0), (300.0, 30.0), (200.0, 11.0)])
    ]
    single = _point("ort2", 1, None, 50.0)
    got = {p["target"]: p for p in aggregate([*rounds, single])}
    assert got["ort2"] == single  # one measurement passes unchanged
    ours = got["ours"]
    assert ours["req_s"] == 200.0 and ours["pred_s"] == 200.0 and ours["p99_ms"] == 11.0
    assert (
        ours["requests"] == 600
        and ours["ok"] == 600
        and ours["app_requests"] == 30
        and ours["rounds"] == 3
    )
    assert "round" not in ours


def test_tables_and_plot(tmp_path: Path) -> None:
    points = [
        {
            **_point("ours", 100, 4, 50.0),
            "app_p50_ms": 0.81,
            "app_p99_ms": 2.96,
            "app_requests": 50,
        },
        _point("hello", 100, 4, 200.0),
        _point("ort2", 100, None, 400.0),
        _point("ours", 100, 16, 0.0),
    ]
    result = {
        "meta": {"ids": [100], "concurrency": [4, 16], "cores": 2, "seconds": 1.0, "date": "today"},
        "points": points,
        "ratios": ratios(points),
    }
    console = Console(record=True, width=200)
    print_tables(result, console)
    text = console.export_text()
    assert "100 ids per request" in text and "0.25x" in text and "0.12x" in text and "25%" in text
    assert "0.81 / 2.96" in text  # our replicas' own latency beside wrk's
    two = [
        _round(_point("ours", 1, 4, 80.0), 0),
        _round(_point("hello", 1, 4, 100.0), 0),
        _round(_point("ours", 1, 4, 60.0), 1),
        _round(_point("hello", 1, 4, 100.0), 1),
    ]
    console = Console(record=True, width=220)  # the ranges need 205 columns
    print_tables(
        {
            "meta": {**result["meta"], "ids": [1], "concurrency": [4], "rounds": 2},
            "points": aggregate(two),
            "ratios": ratios(two),
        },
        console,
    )
    text = console.export_text()
    assert "median of 2 interleaved rounds" in text and "0.70x (0.60-0.80)" in text
    pytest.importorskip("matplotlib")
    plot_results(result, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = {
        "meta": {**result["meta"], "concurrency": [16]},
        "points": [_point("ours", 100, 16, 0.0)],
        "ratios": [],
    }
    plot_results(empty, tmp_path / "empty.png")  # no positive value anywhere: still a plot
    assert (tmp_path / "empty.png").stat().st_size > 0
