"""`reengage bench score`: the choices it refuses before anything starts."""

from __future__ import annotations

import pytest

from loadtests.bench.score import BenchError, run_score_bench
from serving.settings import load_settings


def test_rounds_below_one_are_refused() -> None:
    with pytest.raises(BenchError, match="rounds must be at least 1"):
        run_score_bench(
            load_settings({}), ids=[1], concurrency=[1], targets=["ort"], rounds=0, plot=False
        )
