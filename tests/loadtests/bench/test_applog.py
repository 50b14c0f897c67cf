"""The bench's in-app latency: the request-log lines our replicas wrote in a window, for
one route, complete lines only, from files that existed at the mark or appeared since."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from loadtests.bench.applog import AppLatency


def line(route: str, latency_ms: float, status: int = 200) -> str:
    return (
        json.dumps({"msg": "request", "route": route, "status": status, "latency_ms": latency_ms})
        + "\n"
    )


def test_counts_the_windows_lines_of_the_route_only(tmp_path: Path) -> None:
    first = tmp_path / "reengage_requests_a.jsonl"
    first.write_text(line("/v1/score", 99.0))  # before the window
    (tmp_path / "other.log").write_text(line("/v1/score", 50.0))  # not a request log
    app = AppLatency(tmp_path)
    mark = app.mark()
    with first.open("a") as f:
        f.write(
            line("/v1/score", 1.0)
            + line("/v2/health/live", 7.0)
            + "a stray non-JSON line\n"
            + line("/v1/score", 3.0, status=503)
            + line("/v1/score", 5.0)[:-10]
        )  # the last still being written
    (tmp_path / "reengage_requests_b.jsonl").write_text(
        line("/v1/score", 2.0)
    )  # a replica started since
    assert sorted(app.since(mark).tolist()) == [1.0, 2.0, 3.0]
    summary = app.summary(mark)
    assert summary["app_requests"] == 3
    assert summary["app_p50_ms"] == pytest.approx(2.0)
    assert summary["app_p99_ms"] == pytest.approx(np.percentile([1.0, 2.0, 3.0], 99))


def test_no_lines_no_figures(tmp_path: Path) -> None:
    app = AppLatency(tmp_path)  # the request log is off: no files at all
    assert app.summary(app.mark()) == {"app_requests": 0, "app_p50_ms": None, "app_p99_ms": None}
