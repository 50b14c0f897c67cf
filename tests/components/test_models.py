"""The model service on real ONNX Runtime: several requests and versions, one call each."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from serving import metrics
from serving.components.batching import InlineBatcher
from serving.components.models import ModelService
from serving.settings import load_settings

NAMES = ("a", "b", "c")


def _service(model_repo: Path, **kwargs: object) -> ModelService:
    settings = load_settings(
        {"models": {"repo_path": str(model_repo), "batch_wait_timeout_s": 0.002}}
    )
    return ModelService("churn", settings.models, **kwargs)  # type: ignore[arg-type]


def _batch_rows() -> dict[str, list[float]]:
    _, samples = metrics.RECORDER.drain()
    return {
        tags[1]: values
        for (name, tags), values in samples.items()
        if name == "reengage_model_batch_rows"
    }


def test_requests_and_versions_merge_into_one_runtime_call_per_version(model_repo: Path) -> None:
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(n, 3)).astype(np.float32) for n in (2, 5, 3, 4)]
    versions = ["1", "2", "1", "2"]
    merged = _service(model_repo)
    alone = _service(model_repo, batcher=InlineBatcher)

    async def run(service: ModelService) -> list[tuple[str, np.ndarray]]:
        return await asyncio.gather(*(service.score(x, NAMES, v) for x, v in zip(xs, versions)))

    metrics.RECORDER.drain()
    batched = asyncio.run(run(merged))
    assert _batch_rows() == {"1": [5.0], "2": [9.0]}  # 2+3 rows on v1, 5+4 on v2: one call each
    reference = asyncio.run(run(alone))
    assert _batch_rows() == {"1": [2.0, 3.0], "2": [5.0, 4.0]}
    for (v_b, p_b), (v_r, p_r), v in zip(batched, reference, versions):
        assert v_b == v_r == v
        np.testing.assert_array_equal(p_b, p_r)  # split back to the right caller, row for row
    assert not np.allclose(batched[0][1][:2], asyncio.run(merged.score(xs[0], NAMES, "2"))[1])


def test_columns_are_taken_by_name_whatever_order_the_features_come_in(model_repo: Path) -> None:
    service = _service(model_repo)
    x = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)
    _, straight = asyncio.run(service.score(x, NAMES, "1"))
    _, shuffled = asyncio.run(service.score(x[:, [2, 0, 1]], ("c", "a", "b"), "1"))
    np.testing.assert_allclose(straight, shuffled, rtol=1e-6)
