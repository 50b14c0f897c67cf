"""Traffic policies on the model service: sticky split, scatter, shadow, refusals, propagation."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import numpy as np
import pytest

from serving import metrics
from serving.components.models import LocalDesiredState, ModelService
from serving.components.desired import ModelStates
from serving.components.traffic_policy import (
    TrafficPolicy,
    VersionRefused,
    row_token,
    versions_from_token,
)
from serving.errors import Conflict
from serving.settings import TrafficPolicyConfig, load_settings

NAMES = ("a", "b", "c")


def _service(model_repo: Path, **kwargs: object) -> ModelService:
    models = {
        "repo_path": str(model_repo),
        "batch_wait_timeout_s": 0.002,
        **kwargs.pop("models", {}),
    }  # type: ignore[dict-item]
    settings = load_settings({"models": models})
    return ModelService("churn", settings.models, **kwargs)  # type: ignore[arg-type]


def _policy(
    weights: dict[str, float], default: str = "1", salt: str | None = None
) -> TrafficPolicy:
    config = TrafficPolicyConfig(
        default=default,
        salt=salt,
        candidates=[{"version": v, "weight": w} for v, w in weights.items()],
    )
    return TrafficPolicy.build("churn", config, default)


def test_assignment_is_sticky_weighted_and_salted() -> None:
    ids = np.arange(200_000, dtype=np.int64) * 7919 + 13
    policy = _policy({"2": 10.0, "3": 5.0})
    codes, versions = policy.assign(ids)
    assert versions == ("1", "2", "3") and codes.dtype == np.int8
    share = np.bincount(codes, minlength=3) / len(ids)
    for observed, expected in zip(share, (0.85, 0.10, 0.05)):  # binomial tolerance, 5 sigma
        assert abs(observed - expected) < 5 * np.sqrt(expected * (1 - expected) / len(ids))
    again, _ = policy.assign(ids[::-1].copy())
    np.testing.assert_array_equal(
        again[::-1], codes
    )  # a customer's version does not depend on the batch
    other, _ = _policy({"2": 10.0, "3": 5.0}, salt="another rollout").assign(ids)
    assert 0.05 < np.mean((codes == 1) != (other == 1)) < 0.25  # a new salt reshuffles who is first


def test_raising_the_canary_keeps_every_canary_customer() -> None:
    ids = np.arange(50_000, dtype=np.int64)
    ten, _ = _policy({"2": 10.0}).assign(ids)
    twenty, _ = _policy({"2": 20.0}).assign(ids)
    assert np.all(twenty[ten == 1] == 1)  # monotone: nobody goes back to the default
    assert abs(np.mean(twenty == 1) - 0.2) < 0.01


def test_the_decision_log_token_recovers_each_rows_version() -> None:
    ids = np.arange(5_000, dtype=np.int64)
    policy = _policy({"2": 30.0}, salt="a|b")
    codes, versions = policy.assign(ids)
    codes = codes.astype(np.int64)
    codes[::7] = -1  # not scored (customer not found)
    expected = np.where(codes >= 0, np.asarray(versions, object)[np.maximum(codes, 0)], None)
    np.testing.assert_array_equal(
        versions_from_token(row_token(codes, versions), len(ids)), expected
    )
    assert versions_from_token("not json", 3).tolist() == [None] * 3


def test_split_scores_each_row_by_its_version_with_one_call_per_version(model_repo: Path) -> None:
    service = _service(model_repo)
    ids = np.arange(400, dtype=np.int64)
    x = np.random.default_rng(0).normal(size=(400, 3)).astype(np.float32)

    async def run() -> tuple:
        await service.set_traffic(
            {"default": "1", "candidates": [{"version": "2", "weight": 25}]}, NAMES
        )
        metrics.RECORDER.drain()
        got = await service.score_rows(x, NAMES, ids)
        counts, samples = metrics.RECORDER.drain()
        _, v1 = await service.score(x, NAMES, "1")
        _, v2 = await service.score(x, NAMES, "2")
        return got, counts, samples, v1, v2

    (label, scores, split), counts, samples, v1, v2 = asyncio.run(run())
    codes, versions, token = split
    assert (
        label == "1,2"
        and versions == ("1", "2")
        and token == service.policy.salt
        and len(token) == 16
    )
    np.testing.assert_array_equal(
        scores, np.where(codes == 1, v2, v1)
    )  # scattered back to request order
    rows = {
        tags[1]: v for (name, tags), v in samples.items() if name == "reengage_model_batch_rows"
    }
    assert rows == {"1": [float(np.sum(codes == 0))], "2": [float(np.sum(codes == 1))]}
    per_version = {
        tags[1]: v
        for (name, tags), v in counts.items()
        if name == "reengage_model_version_rows_total"
    }
    assert per_version == {
        "1": float(np.sum(codes == 0)),
        "2": float(np.sum(codes == 1)),
    }  # evidence per version
    one, _, none = asyncio.run(service.score_rows(x[:1], NAMES, ids[:1]))
    assert (
        none is None and one == versions[codes[0]]
    )  # one customer: no split column, its own version


def test_no_policy_scores_like_before(model_repo: Path) -> None:
    service = _service(model_repo)
    x = np.random.default_rng(1).normal(size=(3, 3)).astype(np.float32)
    version, scores, split = asyncio.run(service.score_rows(x, NAMES, np.arange(3)))
    assert version == "2" and split is None
    np.testing.assert_array_equal(scores, asyncio.run(service.score(x, NAMES))[1])


def _corrupt(model_repo: Path, version: int) -> None:
    vdir = model_repo / "churn" / str(version)
    vdir.mkdir()
    (vdir / "model.onnx").write_bytes(b"not an onnx graph")
    (vdir / "metrics.json").write_text(json.dumps({"features": list(NAMES)}))


def test_broken_versions_are_refused_naming_the_cause_and_never_take_traffic(
    model_repo: Path,
) -> None:
    from tests.serving.conftest import write_version

    service = _service(model_repo)
    x = np.random.default_rng(2).normal(size=(50, 3)).astype(np.float32)
    ids = np.arange(50, dtype=np.int64)
    _corrupt(model_repo, 3)  # a corrupt file
    write_version(
        model_repo / "churn", 4, np.array([1.0, 1.0, 1.0]), 0.0, ("a", "b", "zzz")
    )  # unfed feature
    write_version(
        model_repo / "churn", 5, np.array([1.0, 1.0]), 0.0, ("a", "b")
    )  # 2 inputs, config says 3

    async def run() -> None:
        await service.set_traffic({"default": "1"}, NAMES)
        for version, cause in (
            ("3", "cannot load"),
            ("4", r"does not provide: \['zzz'\]"),
            ("5", "lists 2 features"),
        ):
            with pytest.raises(VersionRefused, match=cause) as info:
                await service.set_traffic(
                    {"default": "1", "candidates": [{"version": version, "weight": 50}]}, NAMES
                )
            assert info.value.status_code == 422 and f"version {version}" in info.value.message
            label, _, split = await service.score_rows(x, NAMES, ids)
            assert label == "1" and split is None  # the default keeps serving every row
        status = await service.traffic()
        assert "3" in status.failures and status.policy["candidates"] == []

    asyncio.run(run())


def test_promote_then_rollback_and_rollback_with_a_broken_candidate(model_repo: Path) -> None:
    service = _service(model_repo)
    x = np.random.default_rng(3).normal(size=(300, 3)).astype(np.float32)
    ids = np.arange(300, dtype=np.int64)

    async def run() -> None:
        await service.set_traffic(
            {"default": "1", "candidates": [{"version": "2", "weight": 30}]}, NAMES
        )
        promoted = await service.promote()
        assert promoted.policy["default"] == "2" and promoted.policy["candidates"] == []
        assert (await service.score_rows(x, NAMES, ids))[0] == "2"
        back = await service.rollback()  # after a promotion: the previous default returns
        assert back.policy["default"] == "1" and (await service.score_rows(x, NAMES, ids))[0] == "1"
        with pytest.raises(Conflict):
            await service.rollback()  # nothing left to roll back
        await service.set_traffic(
            {"default": "1", "candidates": [{"version": "2", "weight": 30}]}, NAMES
        )
        broken = service.registry.get("churn", "2")

        def fail(inputs):  # type: ignore[no-untyped-def]
            raise RuntimeError("candidate exploded")

        broken.predict = fail  # type: ignore[method-assign]
        with pytest.raises(RuntimeError):
            await service.score_rows(x, NAMES, ids)
        await service.rollback()  # one call, whatever state the candidate is in
        assert (await service.score_rows(x, NAMES, ids))[0] == "1"

    asyncio.run(run())


def test_shadow_scores_off_the_answer_and_is_summarised(model_repo: Path) -> None:
    service = _service(model_repo)
    x = np.random.default_rng(4).normal(size=(64, 3)).astype(np.float32)
    ids = np.arange(64, dtype=np.int64)

    async def run() -> tuple:
        await service.set_traffic(
            {"default": "1", "shadow": {"version": "2", "percent": 100}}, NAMES
        )
        label, scores, split = await service.score_rows(x, NAMES, ids)
        await asyncio.sleep(0.05)  # the shadow task runs after the answer
        return label, scores, split, await service.traffic()

    label, scores, split, status = asyncio.run(run())
    assert label == "1" and split is None
    np.testing.assert_array_equal(
        scores, asyncio.run(service.score(x, NAMES, "1"))[1]
    )  # answers untouched
    shadow = status.shadow
    assert shadow.rows == 64 and shadow.mean_abs_diff > 0 and shadow.shadow_latency_ms is not None


def test_shadow_calls_in_flight_are_bounded_and_the_skipped_rows_counted(model_repo: Path) -> None:
    service = _service(model_repo, models={"shadow_max_tasks": 2})
    x = np.random.default_rng(6).normal(size=(10, 3)).astype(np.float32)
    ids = np.arange(10, dtype=np.int64)

    async def run() -> tuple:
        await service.set_traffic(
            {"default": "1", "shadow": {"version": "2", "percent": 100}}, NAMES
        )
        metrics.RECORDER.drain()
        for _ in range(5):  # no await in between: the shadow tasks have not run yet
            service.shadow.spawn(
                service.policy, x, NAMES, ids, np.zeros(10, np.int8), np.zeros(10, np.float32)
            )
        in_flight = len(service.shadow.tasks)
        await asyncio.sleep(0.05)
        return in_flight, metrics.RECORDER.drain()[0], await service.traffic()

    in_flight, counts, status = asyncio.run(run())
    assert in_flight == 2
    assert counts[("reengage_shadow_skipped_rows_total", ("churn", "2"))] == 30
    assert counts[("reengage_shadow_rows_total", ("churn", "2"))] == 20 and status.shadow.rows == 20


def test_a_change_reaches_the_other_replica_at_the_activation_moment(model_repo: Path) -> None:
    states = ModelStates()
    models = {"poll_interval_s": 0.05, "rollout_activation_s": 0.3}
    a = _service(
        model_repo, models=models, desired=LocalDesiredState(states), poll=True, replica="a"
    )
    b = _service(
        model_repo, models=models, desired=LocalDesiredState(states), poll=True, replica="b"
    )
    x = np.random.default_rng(5).normal(size=(2, 3)).astype(np.float32)

    async def run() -> tuple:
        await a.score_rows(x, NAMES, np.arange(2))
        await b.score_rows(x, NAMES, np.arange(2))  # both replicas started and polling
        start = time.time()
        answer = await a.set_traffic(
            {"default": "1", "candidates": [{"version": "2", "weight": 50}]}, NAMES
        )
        took = time.time() - start
        return answer, took, a.policy, b.policy

    answer, took, pa, pb = asyncio.run(run())
    assert set(answer.acknowledged_after_s) == {"a", "b"} and not answer.late_replicas
    assert answer.activation_delay_s == 0.3 and took >= 0.3  # nobody switches before the moment
    assert answer.propagation_s < 5.0  # b polls every 50 ms (generous: the CI machine is shared)
    assert pa == pb and pa is not None and pa.candidates == (("2", 50.0),)


def test_the_serve_config_policy_applies_on_start(model_repo: Path) -> None:
    rollout = {"churn": {"default": "1", "candidates": [{"version": "2", "weight": 100}]}}
    service = _service(model_repo, models={"rollout": rollout})
    x = np.random.default_rng(6).normal(size=(5, 3)).astype(np.float32)
    assert asyncio.run(service.score_rows(x, NAMES, np.arange(5)))[0] == "2"
    assert service.policy is not None and service.policy.default == "1"


def test_a_version_in_use_cannot_be_unloaded_and_control_mode_none_refuses(
    model_repo: Path,
) -> None:
    service = _service(model_repo)

    async def run() -> None:
        await service.set_traffic(
            {"default": "1", "candidates": [{"version": "2", "weight": 10}]}, NAMES
        )
        with pytest.raises(Conflict, match="takes traffic"):
            await service.exclude_version("2", True)
        await service.rollback()
        await service.exclude_version("2", True)
        assert service.registry.loaded_versions("churn") == ["1"]
        with pytest.raises(VersionRefused, match="unloaded"):
            await service.set_traffic(
                {"default": "1", "candidates": [{"version": "2", "weight": 10}]}, NAMES
            )
        await service.exclude_version("2", False)
        assert service.registry.loaded_versions("churn") == ["1", "2"]

    asyncio.run(run())
    fixed = _service(model_repo, models={"control_mode": "none"})
    with pytest.raises(Conflict, match="control mode"):
        asyncio.run(fixed.unload())


def test_a_request_in_flight_finishes_on_the_version_it_started_on(model_repo: Path) -> None:
    service = _service(
        model_repo, models={"batch_wait_timeout_s": 0.05}
    )  # requests wait 50 ms for company
    x = np.random.default_rng(7).normal(size=(4, 3)).astype(np.float32)

    async def run() -> tuple:
        await service.ready()
        queued = asyncio.ensure_future(service.score(x, NAMES, "2"))
        while not service._batcher._queue:  # type: ignore[attr-defined]  # queued, holding version 2
            await asyncio.sleep(0.001)
        service.registry.load("churn", exclude=("2",))  # version 2 leaves while the request waits
        assert service.registry.loaded_versions("churn") == ["1"]
        return await queued

    version, scores = asyncio.run(run())
    assert version == "2" and scores.shape == (4,) and np.all(np.isfinite(scores))


def test_explicit_control_mode_leaves_new_versions_on_disk_alone(model_repo: Path) -> None:
    from tests.serving.conftest import write_version

    explicit = _service(model_repo, models={"control_mode": "explicit"})
    polled = _service(model_repo)
    for service in (explicit, polled):
        assert asyncio.run(service.ready())  # started: synced with the desired state
    write_version(model_repo / "churn", 3, np.array([0.5, 0.5, 0.5]), 0.0, NAMES)
    asyncio.run(explicit.sync.reconcile())
    asyncio.run(polled.sync.reconcile())
    assert explicit.registry.loaded_versions("churn") == ["1", "2"]  # until a load call
    assert polled.registry.loaded_versions("churn") == ["1", "2", "3"]
    asyncio.run(explicit.load())
    assert explicit.registry.loaded_versions("churn") == ["1", "2", "3"]


def test_without_a_policy_a_newest_version_nobody_can_feed_never_becomes_the_default(
    model_repo: Path,
) -> None:
    from tests.serving.conftest import write_version

    service = _service(model_repo)
    assert asyncio.run(service.ready())
    write_version(model_repo / "churn", 3, np.array([1.0, 1.0, 1.0]), 0.0, ("a", "b", "zzz"))
    asyncio.run(service.sync.reconcile())  # poll mode: version 3 loads, and would be the newest
    x = np.random.default_rng(8).normal(size=(3, 3)).astype(np.float32)
    version, _ = asyncio.run(service.score(x, NAMES))
    assert version == "2" and "zzz" in service.registry.failures("churn")["3"]
    assert service.registry.loaded_versions("churn") == ["1", "2"]


def test_replicas_follow_a_restarted_control_actor(model_repo: Path) -> None:
    desired = LocalDesiredState()
    service = _service(model_repo, desired=desired)

    async def run() -> None:
        await service.set_traffic(
            {"default": "1", "candidates": [{"version": "2", "weight": 10}]}, NAMES
        )
        await service.promote()  # generation 3 in the first epoch
        desired.states = ModelStates()  # the actor restarted: a new epoch, generations from 0
        await desired.update(
            "churn",
            {
                "policy": {"default": "1", "candidates": [], "shadow": None, "salt": None},
                "activate_at": 0.0,
            },
        )
        await service.sync.reconcile()

    asyncio.run(run())
    assert service.policy is not None and service.policy.default == "1"
