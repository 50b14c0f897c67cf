"""Bucket assignment: sticky through every change, the fewest customers moved, property-tested."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.components.traffic_policy import BUCKETS, TrafficPolicy, owner_table, rebalance
from serving.errors import InvalidRequest
from serving.hashing import salted_hash
from serving.settings import TrafficPolicyConfig

VERSIONS = ("2", "3", "4", "5")
IDS = np.arange(40_000, dtype=np.int64) * 104_729 + 7


def _owner(weights: dict[str, float], buckets: dict | None) -> np.ndarray:
    """Per bucket the owning version ("d": the default)."""
    table = owner_table(list(weights), buckets)
    return np.asarray([*weights, "d"], dtype=object)[np.where(table >= 0, table, len(weights))]


def _change(draw_weights: dict[str, float], version: str, weight: float) -> dict[str, float]:
    out = dict(draw_weights)
    if weight == 0:
        out.pop(version, None)
    else:
        out[version] = weight
    return out


changes = st.lists(
    st.tuples(st.sampled_from(VERSIONS), st.integers(0, 80).map(lambda k: k / 2)),
    min_size=1,
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(changes)
def test_each_change_moves_only_the_customers_it_must(sequence: list[tuple[str, float]]) -> None:
    weights: dict[str, float] = {}
    buckets: dict | None = None
    for version, weight in sequence:
        new = _change(weights, version, weight)
        if sum(new.values()) > 100:
            with pytest.raises(InvalidRequest):
                rebalance(list(new.items()), buckets)
            continue
        after = rebalance(list(new.items()), buckets)
        old_owner, new_owner = _owner(weights, buckets), _owner(new, after)
        for v, w in new.items():  # each candidate holds exactly its share
            assert sum(e - s for s, e in after[v]) == round(w * BUCKETS / 100)
        moved = int(np.count_nonzero(old_owner != new_owner))
        deltas = {
            v: round(new.get(v, 0) * 100) - round(weights.get(v, 0) * 100)
            for v in set(new) | set(weights)
        }
        gained = sum(d for d in deltas.values() if d > 0)
        default_had = BUCKETS - round(sum(weights.values()) * 100)
        if gained <= default_had:  # growth comes from the default alone, shrinkage goes back to it
            assert moved == sum(abs(d) for d in deltas.values())
        else:  # more growth than the default held: the rest from buckets given back in this change
            assert moved == sum(abs(d) for d in deltas.values()) - (gained - default_had)
        for (
            v
        ) in new:  # nobody of an unchanged candidate moves; growth keeps all, shrinkage a subset
            was, now = old_owner == v, new_owner == v
            if deltas[v] >= 0:
                assert np.all(now[was])
            else:
                assert np.all(was[now])
        weights, buckets = new, after


@settings(max_examples=40, deadline=None)
@given(changes, st.text(min_size=1, max_size=30))
def test_customers_follow_their_buckets_under_any_salt(
    sequence: list[tuple[str, float]], salt: str
) -> None:
    weights: dict[str, float] = {}
    buckets: dict | None = None
    previous = None
    for version, weight in sequence:
        new = _change(weights, version, weight)
        if sum(new.values()) > 100:
            continue
        config = TrafficPolicyConfig(
            default="1", salt=salt, candidates=[{"version": v, "weight": w} for v, w in new.items()]
        )
        policy = TrafficPolicy.build("churn", config, "1", buckets)
        codes, names = policy.assign(IDS)
        got = np.asarray(names, dtype=object)[codes]
        bucket = (salted_hash(IDS, salt) % np.uint64(BUCKETS)).astype(np.intp)
        expected = _owner(new, policy.buckets)[bucket]
        np.testing.assert_array_equal(got, np.where(expected == "d", "1", expected))
        if previous is not None:
            for v in new:
                if new[v] == weights.get(v):  # an unchanged candidate: every customer stays
                    assert np.all(got[previous == v] == v)
        weights, buckets, previous = new, policy.buckets, got


def test_raising_one_candidate_keeps_every_customer_of_the_other() -> None:
    """The issue's case: v2 and v3 at 10 percent, v2 raised to 20."""
    first = TrafficPolicy.build(
        "churn",
        TrafficPolicyConfig(
            default="1",
            salt="s",
            candidates=[{"version": "2", "weight": 10}, {"version": "3", "weight": 10}],
        ),
        "1",
    )
    raised = TrafficPolicy.build(
        "churn",
        TrafficPolicyConfig(
            default="1",
            salt="s",
            candidates=[{"version": "2", "weight": 20}, {"version": "3", "weight": 10}],
        ),
        "1",
        first.buckets,
    )
    added = TrafficPolicy.build(
        "churn",
        TrafficPolicyConfig(
            default="1",
            salt="s",
            candidates=[
                {"version": "2", "weight": 20},
                {"version": "3", "weight": 10},
                {"version": "4", "weight": 5},
            ],
        ),
        "1",
        raised.buckets,
    )
    a, b, c = (
        np.asarray(p.assign(IDS)[1], object)[p.assign(IDS)[0]] for p in (first, raised, added)
    )
    assert np.all(b[a == "3"] == "3") and np.all(b[a == "2"] == "2")
    assert np.all(c[b == "3"] == "3") and np.all(c[b == "2"] == "2")
    assert abs(np.mean(a != b) - 0.10) < 0.01 and abs(np.mean(b != c) - 0.05) < 0.01
    assert set(c[b != c]) == {"4"} and set(b[b != c]) == {
        "1"
    }  # v4's customers all came from the default


def test_a_stored_policy_rebuilds_the_same_assignment() -> None:
    config = TrafficPolicyConfig(
        default="1", salt="a|b|c", candidates=[{"version": "2", "weight": 12.5}]
    )
    policy = TrafficPolicy.build("churn", config, "1")
    stored = TrafficPolicyConfig.model_validate(policy.to_config())
    again = TrafficPolicy.build("churn", stored, "1")
    np.testing.assert_array_equal(policy.assign(IDS)[0], again.assign(IDS)[0])
    bad = stored.model_copy(update={"buckets": {"2": [[0, 10]]}})
    with pytest.raises(InvalidRequest, match="bucket ranges"):
        TrafficPolicy.build("churn", bad, "1")


def test_the_shadow_keeps_its_own_sample_through_candidate_changes() -> None:
    def policy(weight: float, previous: dict | None = None) -> TrafficPolicy:
        return TrafficPolicy.build(
            "churn",
            TrafficPolicyConfig(
                default="1",
                salt="s",
                candidates=[{"version": "2", "weight": weight}],
                shadow={"version": "3", "percent": 30},
            ),
            "1",
            previous,
        )

    low = policy(10)
    high = policy(40, low.buckets)
    mask = low.shadow_mask(IDS)
    np.testing.assert_array_equal(mask, high.shadow_mask(IDS))
    codes = high.assign(IDS)[0]
    for rows in (codes == 0, codes == 1):  # independent of the buckets: 30 percent of either group
        share = mask[rows].mean()
        assert abs(share - 0.30) < 5 * np.sqrt(0.3 * 0.7 / rows.sum())
