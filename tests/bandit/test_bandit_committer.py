"""The background committer: group commits off the request path, a bounded queue, a
graceful close that loses nothing, caps that stay exact, a hung store that costs a 503."""

from __future__ import annotations

import asyncio
import pickle
import sqlite3
import time
from collections import Counter
from typing import Any

import numpy as np
import pytest
import redis

from serving.bandit.router import BanditRouter, Decisions
from serving.bandit.state import BatchRecord, Group, GroupCommitter, Reason, Reservation
from serving.errors import DependencyUnavailable, Overloaded, status_and_body
from tests.bandit.conftest import contexts, logged_batches, logged_contacts, stored_contacts

CAPPED: dict[str, Any] = {
    "policy": "uniform",
    "epsilon": 1.0,
    "holdout_share": 0.0,
    "contact_cap": 2,
    "arms": ["a", "b", "no_contact"],
}
LOG_ONLY: dict[str, Any] = {"holdout_share": 0.0, "contact_cap": 0}


def log_only(router: BanditRouter, ids: Any) -> Decisions:
    """Not-found rows: logged, never a reservation, so the call never waits for the store."""
    ids = np.asarray(ids)
    return router.decide_sync(
        ids, contexts(len(ids)), eligible=np.zeros(len(ids), bool), model_versions={}
    )


def test_overloaded_is_a_503_that_pickles() -> None:
    err = pickle.loads(pickle.dumps(Overloaded("queue full", retry_after_s=2.5)))
    assert isinstance(err, Overloaded) and err.retry_after_s == 2.5 and err.message == "queue full"
    assert status_and_body(err) == (
        503,
        {"error": {"type": "overloaded", "message": "queue full", "field": None}},
    )


class FlakyStore:
    """Fails the first ``failures`` commits (as a store that is down), then records groups."""

    def __init__(self, failures: int) -> None:
        self.failures, self.groups = failures, []  # type: ignore[var-annotated]

    def commit(self, group: Group) -> None:
        if self.failures:
            self.failures -= 1
            raise DependencyUnavailable("bandit state (test) is down")
        for res in group.reservations:
            res.settle(np.ones(len(res.rows), bool))
        self.groups.append([r.batch_id for r in group.records])


def record(bid: str, n: int = 1) -> BatchRecord:
    return BatchRecord(
        bid,
        0.0,
        "uniform",
        "v",
        {},
        ("a", "b"),
        ("x",),
        np.arange(n),
        np.zeros((n, 1), np.float32),
        np.zeros(n, np.int16),
        np.ones(n),
        np.zeros(n, np.uint8),
    )


def test_a_failed_commit_refuses_its_reservations_and_keeps_its_records_in_order() -> None:
    store = FlakyStore(failures=2)
    committer = GroupCommitter(store, flush_interval_s=0.01)  # type: ignore[arg-type]
    try:
        committer.submit(record("a"))
        reserved = record("r")
        waiter = committer.submit(reserved, Reservation(reserved, np.arange(1), 60.0, 1, 1))
        committer.submit(record("b"))
        with pytest.raises(DependencyUnavailable, match="down"):
            waiter.result(timeout=10)  # type: ignore[union-attr]
        assert committer.flush(timeout_s=10)
        assert [b for g in store.groups for b in g] == ["a", "b"]  # retried, in order, none lost
        assert committer.queued_rows == 0
    finally:
        committer.close()


def test_close_with_the_store_still_down_says_what_it_could_not_write(
    caplog: pytest.LogCaptureFixture,
) -> None:
    committer = GroupCommitter(FlakyStore(failures=10**9), flush_interval_s=0.01)  # type: ignore[arg-type]
    committer.submit(record("a", n=3))
    committer.close(timeout_s=0.3)
    assert "3 decision rows in 1 batches could not be written" in caplog.text


def test_graceful_close_under_concurrent_decides_loses_nothing(any_router: Any) -> None:
    router = any_router(**CAPPED, flush_interval_s=0.02)
    acked: list[Decisions] = []

    async def client(k: int) -> None:
        rng = np.random.default_rng(k)
        while True:
            ids = rng.integers(0, 6, 3)
            try:
                acked.append(
                    await router.decide(
                        ids, contexts(3), eligible=rng.random(3) < 0.8, model_versions={}
                    )
                )
            except Overloaded:  # closing: refused before anything was queued
                return
            await asyncio.sleep(0)

    async def main() -> None:
        tasks = [asyncio.create_task(client(k)) for k in range(8)]
        deadline = time.monotonic() + 20
        while len(acked) < 40 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await router.aclose()  # while the clients keep deciding
        await asyncio.gather(*tasks)

    asyncio.run(main())
    log = logged_batches(router.settings)
    assert len(acked) >= 40 and {d.batch_id for d in acked} <= set(log)
    for d in acked:  # the log holds what each caller was told, caps included
        np.testing.assert_array_equal(log[d.batch_id].arm_index, d.arm_index)
    contacts = logged_contacts(log.values(), router.control)
    assert contacts == stored_contacts(router.settings)  # no contact count lost, none extra
    assert max(contacts.values()) == 2  # exact: the cap is reached and never passed


def test_concurrent_reservations_share_one_redis_group(redis_router: Any) -> None:
    router = redis_router(**CAPPED, flush_interval_s=1.0)

    async def main() -> list[Decisions]:
        return await asyncio.gather(
            *(
                router.decide(
                    np.arange(10 * k, 10 * k + 10),
                    contexts(10),
                    eligible=np.ones(10, bool),
                    model_versions={},
                )
                for k in range(50)
            )
        )

    decided = asyncio.run(main())
    assert router.committer.committed == 50 and router.committer.commits < 10  # group commit
    assert {d.batch_id for d in decided} <= set(logged_batches(router.settings))


def test_reserved_decisions_are_committed_when_answered_on_redis(redis_router: Any) -> None:
    router = redis_router(**CAPPED, flush_interval_s=0.5)
    d = router.decide_sync(
        np.arange(20), contexts(20), eligible=np.ones(20, bool), model_versions={}
    )
    assert d.batch_id in logged_batches(router.settings)  # its reservation script, then its record


def test_embedded_reservations_are_inline_and_every_record_lands_within_the_interval(
    embedded_router: Any,
) -> None:
    router = embedded_router(**CAPPED, flush_interval_s=0.5)
    t0 = time.monotonic()
    d = router.decide_sync(
        np.arange(20), contexts(20), eligible=np.ones(20, bool), model_versions={}
    )
    assert time.monotonic() - t0 < 0.25  # no wait for the group commit: the ledger reserved inline
    sent = (d.reason_code == Reason.POLICY) & (d.arm_index != router.control)
    assert sent.any() and stored_contacts(router.settings) == Counter(
        np.flatnonzero(sent).tolist()
    )  # counted at once
    assert d.batch_id not in logged_batches(
        router.settings
    )  # the record follows within the interval
    lazy = log_only(router, [1, 2])
    assert time.monotonic() - t0 < 0.25 and lazy.batch_id not in logged_batches(
        router.settings
    )  # no wait
    deadline = time.monotonic() + 5
    while lazy.batch_id not in logged_batches(router.settings):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert time.monotonic() - t0 < 0.5 + 0.4  # one flush interval, plus a margin for a busy machine


def test_full_queue_refuses_before_any_side_effect_then_logs_every_accepted(
    embedded_router: Any,
) -> None:
    router = embedded_router(**CAPPED, log_queue_rows=40, flush_interval_s=0.01)
    blocker = sqlite3.connect(router.store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    accepted: list[Decisions] = []
    with pytest.raises(Overloaded) as full:
        for i in range(10):
            accepted.append(log_only(router, np.arange(10 * i, 10 * i + 10)))
    assert (
        len(accepted) == 4 and full.value.retry_after_s > 0 and router.committer.queued_rows == 40
    )
    t0 = time.monotonic()
    with pytest.raises(Overloaded):  # would contact customer 999: refused at once, nothing reserved
        router.decide_sync(
            np.array([999]), contexts(1), eligible=np.ones(1, bool), model_versions={}
        )
    assert time.monotonic() - t0 < 0.5
    blocker.execute("ROLLBACK")
    blocker.close()
    assert router.flush(timeout_s=30)
    log = logged_batches(router.settings)
    assert {d.batch_id for d in accepted} == set(log)
    assert 999 not in stored_contacts(router.settings)


def test_redis_paused_fills_the_queue_then_every_accepted_decision_is_logged_once(
    redis_router: Any, redis_url: str
) -> None:
    router = redis_router(**LOG_ONLY, log_queue_rows=30, flush_interval_s=0.01, timeout_s=0.1)
    admin = redis.Redis.from_url(redis_url)
    admin.client_pause(
        10_000, all=False
    )  # writes (and scripts) wait: the writer times out and retries
    accepted: list[Decisions] = []
    try:
        with pytest.raises(Overloaded):
            for i in range(10):
                accepted.append(log_only(router, np.arange(10 * i, 10 * i + 10)))
                time.sleep(0.05)
    finally:
        admin.client_unpause()
    assert len(accepted) == 3
    assert router.flush(timeout_s=30)
    log = logged_batches(router.settings)
    assert {d.batch_id for d in accepted} == set(log)


def test_hung_redis_is_a_fast_503_naming_the_bandit_state_and_the_loop_keeps_running(
    redis_router: Any, redis_url: str
) -> None:
    router = redis_router(
        **{**CAPPED, "arms": ["a", "no_contact"]}, timeout_s=0.2, flush_interval_s=0.01
    )
    admin = redis.Redis.from_url(redis_url)

    async def main() -> list[float]:
        lags: list[float] = []

        async def ticker() -> None:
            for _ in range(30):
                t = time.monotonic()
                await asyncio.sleep(0.01)
                lags.append(time.monotonic() - t - 0.01)

        tick = asyncio.create_task(ticker())
        with pytest.raises(
            DependencyUnavailable, match="bandit state"
        ):  # 20 rows: some contact someone
            await router.decide(
                np.arange(20), contexts(20), eligible=np.ones(20, bool), model_versions={}
            )
        t0 = time.monotonic()
        await router.decide(
            np.arange(3), contexts(3), eligible=np.zeros(3, bool), model_versions={}
        )
        assert time.monotonic() - t0 < 0.05  # no reservation: answered without the store
        with pytest.raises(DependencyUnavailable, match="bandit state"):
            await router.feedback("0123456789abcdef-0", 1.0)
        await tick
        return lags

    admin.client_pause(1_500, all=True)  # Redis 7.0 blocks even CLIENT UNPAUSE: let it expire
    t0 = time.monotonic()
    lags = asyncio.run(main())
    assert time.monotonic() - t0 < 1.5  # every answer came while Redis was still hung
    assert max(lags) < 0.15  # the event loop never waited for Redis (timeout 0.2 s)


def test_statistics_refresh_in_the_background(any_router: Any) -> None:
    a = any_router(**LOG_ONLY, sync_interval_s=0.05)
    b = any_router(**LOG_ONLY)
    d = b.decide_sync(np.arange(10), contexts(10), eligible=np.ones(10, bool), model_versions={})
    assert list(b.feedback_many(list(d.decision_id), np.ones(10))) == ["ok"] * 10
    deadline = time.monotonic() + 5
    while a.stats[:, 0].sum() != 10:  # a never calls sync: its committer thread refreshes
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert a.policy_version == b.policy_version


def test_a_reward_at_another_replica_right_after_the_decision_is_found(any_router: Any) -> None:
    a, b = any_router(**LOG_ONLY), any_router(**LOG_ONLY)

    async def main() -> dict[str, object]:
        d = await a.decide(np.arange(3), contexts(3), eligible=np.ones(3, bool), model_versions={})
        return await b.feedback(d.decision_id[0], 1.0)  # a may not have committed it yet

    assert asyncio.run(main())["policy_updated"] is True


def test_closed_router_refuses_with_overloaded(embedded_router: Any) -> None:
    router = embedded_router(**LOG_ONLY)
    log_only(router, [1])
    router.committer.close()
    with pytest.raises(Overloaded, match="shutting down"):
        log_only(router, [2])
    assert len(logged_batches(router.settings)) == 1
