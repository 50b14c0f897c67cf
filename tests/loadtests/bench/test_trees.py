"""`reengage bench trees` parts: the runtimes it compares and its interleaved measurement (no
timing asserted)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from serving.repository import read_model
from loadtests.bench.trees import interleaved, measure, runtimes

from tests.trained_churn import Trained


def test_runtimes_agree_on_the_holdout(trained: Trained, tmp_path: Path) -> None:
    spec = read_model(trained.models, "churn")
    fns, notes = runtimes(spec, spec.versions[str(trained.result.version)], tmp_path)
    assert list(fns)[:2] == ["onnxruntime", "lleaves"]  # tl2cgen joins only where installed
    assert all(
        "lleaves" not in note for note in notes
    )  # the build's artifact was used, not recompiled
    ref = fns["onnxruntime"](trained.holdout)
    for name, fn in fns.items():
        got = fn(trained.holdout)
        assert got.shape == (len(trained.holdout),) and got.dtype == np.float32, name
        assert np.max(np.abs(got.astype(np.float64) - ref)) <= 1e-6, name


def test_measure_interleaves_every_runtime_in_every_round() -> None:
    calls: list[str] = []

    def fn(name: str):  # type: ignore[no-untyped-def]
        return lambda x: calls.append(name) or x[:, 0]

    fns = {"a": fn("a"), "b": fn("b")}
    rates = interleaved(fns, [np.zeros((3, 2), np.float32)] * 2, calls=2, rounds=3)
    assert {k: len(v) for k, v in rates.items()} == {"a": 3, "b": 3}
    # per round: one warm-up call then two timed calls; rounds alternate the order
    assert calls == ["a"] * 3 + ["b"] * 3 + ["b"] * 3 + ["a"] * 3 + ["a"] * 3 + ["b"] * 3
    out = measure(fns, np.zeros((5, 2), np.float32), sizes=(1, 10), rounds=2, cell_s=0.001)
    assert set(out) == {1, 10} and out[10]["a"][1] == 1.0 and out[10]["b"][0] > 0
