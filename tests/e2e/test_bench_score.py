"""`reengage bench score` end to end on the e2e workspace, without a second Ray: the real
plain FastAPI app on uvicorn and raw ONNX Runtime, real wrk, two rounds.

Ours and hello-world need the bench's own private Ray head, which this process (already
connected to the e2e session's cluster) cannot start; the pairing of ours with the
references of its round is tested on points in tests/loadtests/bench/test_report.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from loadtests.bench.score import run_score_bench
from serving.settings import Settings

pytestmark = pytest.mark.e2e


def test_rounds_measure_each_point_again_and_report_medians(
    settings: Settings, tmp_path: Path, wrk: str
) -> None:
    out = tmp_path / "bench.json"
    result = run_score_bench(
        settings,
        ids=[1, 10],
        concurrency=[2],
        targets=["plain", "ort"],
        seconds=1.0,
        warmup=0.0,
        rounds=2,
        out_json=out,
        plot=False,
        console=Console(width=220),
    )
    assert json.loads(out.read_text())["meta"]["rounds"] == 2
    rounds = [p for p in result["rounds"] if p["target"] == "plain"]
    assert sorted((p["ids"], p["round"]) for p in rounds) == [(1, 0), (1, 1), (10, 0), (10, 1)]
    assert all(p["req_s"] > 0 and p["errors"] == 0 for p in rounds)
    assert all(c["status"] == 200 and c["found"] == c["ids"] for c in result["meta"]["checks"])
    by_ids = {p["ids"]: p for p in result["points"] if p["target"] == "plain"}
    for n, merged in by_ids.items():
        mine = [p for p in rounds if p["ids"] == n]
        assert merged["rounds"] == 2 and merged["requests"] == sum(p["requests"] for p in mine)
        assert min(p["req_s"] for p in mine) <= merged["req_s"] <= max(p["req_s"] for p in mine)
    assert {p["target"] for p in result["points"]} == {"plain", "ort1", "ort2"}
    assert result["meta"]["stopped"] == {"plain": True}
