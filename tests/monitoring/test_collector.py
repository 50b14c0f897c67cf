"""The collector and the window answer on synthetic references: binning rule, replicas
combined, a restart within a second, a killed replica, a rollout's versions apart."""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from model_repo.training import reference as build_ref
from serving.monitoring import Monitor, Observation, References, Scored, Thresholds, report
from serving.monitoring.reference import Binner, psi
from serving.monitoring.segments import PLAN_TIERS, REGIONS
from serving.protocol.monitor import MonitorReport as WireReport

NAMES = ("plan_tier", "region_code", "age_years", "spend_30d")
T0 = 1_800_000_000  # a fixed second (epoch) for the buckets


def _data(n: int, rng: np.random.Generator, shift: float = 0.0) -> np.ndarray:
    x = np.stack(
        [
            rng.integers(0, 3, n),
            rng.integers(0, 5, n),
            rng.integers(18, 80, n),
            rng.lognormal(3 + shift, 1, n),
        ],
        axis=1,
    ).astype(np.float32)
    return x


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Both shared state backends (the one state switch): the same buckets, the same answer."""
    from serving.shared_state import RedisSharedState, SqliteSharedState

    if request.param == "sqlite":
        s: Any = SqliteSharedState(tmp_path / "shared.sqlite")
    else:
        s = RedisSharedState(request.getfixturevalue("redis_url"), where="test")
    yield s
    s.close()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with model ``m`` versions 1 and 2 (same reference) and 3 (none)."""
    rng = np.random.default_rng(0)
    x = _data(20_000, rng)
    x[:100, 3] = np.nan
    doc = build_ref.build("m", "fp", NAMES, x, rng.random(len(x)))
    for v in ("1", "2", "3"):
        (tmp_path / "m" / v).mkdir(parents=True)
    for v in ("1", "2"):
        (tmp_path / "m" / v / "reference.json").write_text(json.dumps(doc))
    return tmp_path


def _obs(
    x: np.ndarray, t: float, scores: np.ndarray | None = None, **models: Scored
) -> Observation:
    s = np.full(len(x), 0.5, np.float32) if scores is None else scores
    return Observation(t, x, NAMES, models or {"m": Scored("1", s)}, s)


def test_binner_counts_what_the_build_counts(repo: Path) -> None:
    doc = json.loads((repo / "m" / "1" / "reference.json").read_text())
    b = Binner.from_doc(doc)
    rng = np.random.default_rng(1)
    x = _data(5000, rng, shift=0.5)
    x[:7, 0] = np.nan
    x[7:20, 2] = 200.0  # out of range
    got = b.split(b.feature_counts(x))
    for j, col in enumerate(doc["features"]):
        assert got[j].tolist() == build_ref.counts(x[:, j], col).tolist()
    assert got[0][0] == 7 and got[2][-1] == 13
    for rows in (x[:1], x[:3], x[5:13], x[5:14]):  # the small-batch path counts the same
        assert (
            b.feature_counts(rows).tolist() == sum(b.feature_counts(r[None]) for r in rows).tolist()
        )
        assert b.feature_counts(rows).tolist() == [
            c for j in range(len(NAMES)) for c in build_ref.counts(rows[:, j], doc["features"][j])
        ]
    s = rng.random(5000)
    assert b.score_counts(s).tolist() == build_ref.counts(s, doc["score"]).tolist()
    assert psi(b.reference, b.reference) == 0.0
    assert psi(b.split(b.reference)[3], got[3]) > 0.1  # spend shifted by exp(0.5)


def test_replicas_add_up_and_psi_is_computed_per_feature(repo: Path, store: Any) -> None:
    refs = References(repo)
    rng = np.random.default_rng(2)
    a, b = Monitor(store, refs, replica="a"), Monitor(store, refs, replica="b")
    xa, xb = _data(600, rng), _data(700, rng, shift=1.0)
    a.observe(_obs(xa, T0 + 0.2))
    b.observe(_obs(xb, T0 + 0.7))
    a.flush(), b.flush()
    out = report(store, refs, Thresholds(min_rows=1000), T0, T0, now=T0 + 1)
    assert out.window.rows == 1300 and out.replicas == 2
    m = out.models["m"].main
    binner = refs.get("m", "1")
    want = binner.split(binner.feature_counts(np.concatenate([xa, xb])))
    spend = next(f for f in m.features if f.feature == "spend_30d")
    assert spend.psi == pytest.approx(psi(binner.split(binner.reference)[3], want[3]))
    assert spend.drift and out.status == "drift"
    plan = next(f for f in m.features if f.feature == "plan_tier")
    assert plan.psi is not None and plan.psi < 0.05 and not plan.drift
    # a window that misses the second has none of it
    assert report(store, refs, Thresholds(), T0 + 1, T0 + 5, now=T0 + 6).window.rows == 0


def test_counts_survive_a_restart_within_their_second(repo: Path, store: Any) -> None:
    refs = References(repo)
    rng = np.random.default_rng(3)
    x1, x2 = _data(400, rng), _data(500, rng)
    first = Monitor(store, refs, replica="r-old").start()
    first.observe(_obs(x1, T0 + 0.1))
    first.close()  # a graceful stop flushes
    second = Monitor(store, refs, replica="r-new")
    second.observe(_obs(x2, T0 + 0.9))  # the same second, after the restart
    second.flush()
    out = report(store, refs, Thresholds(min_rows=1), T0, T0, now=time.time())
    assert out.window.rows == 900
    binner = refs.get("m", "1")
    got = out.models["m"].main
    spend = next(f for f in got.features if f.feature == "spend_30d")
    whole = binner.split(binner.feature_counts(np.concatenate([x1, x2])))[3]
    assert spend.psi == pytest.approx(psi(binner.split(binner.reference)[3], whole))
    assert out.lost == ()


def test_a_killed_replica_is_named_with_what_it_may_have_lost(repo: Path, store: Any) -> None:
    refs = References(repo)
    rng = np.random.default_rng(4)
    m = Monitor(store, refs, replica="r-killed", flush_interval_s=0.05).start()
    m.observe(_obs(_data(300, rng), time.time()))
    time.sleep(0.3)  # flushed by its thread
    m.abandon()  # killed: no final flush, no closed heartbeat
    m.observe(_obs(_data(200, rng), time.time()))  # seen after the last flush, never written
    now = time.time() + 5
    out = report(store, refs, Thresholds(min_rows=1), int(now) - 60, int(now), now=now)
    assert out.window.rows == 300
    assert [x.replica for x in out.lost] == ["r-killed"]
    assert out.lost[0].after is not None and out.lost[0].reason == "stopped without flushing"
    closed = Monitor(store, refs, replica="r-closed")
    closed.observe(_obs(_data(10, rng), time.time()))
    closed.close()
    later = report(store, refs, Thresholds(min_rows=1), int(now) - 60, int(now), now=now)
    assert [x.replica for x in later.lost] == ["r-killed"]


def test_a_full_queue_drops_and_says_so(repo: Path, store: Any) -> None:
    refs = References(repo)
    m = Monitor(store, refs, replica="r", queue_max=2)
    for _ in range(3):
        m.observe(_obs(_data(10, np.random.default_rng(5)), T0 + 0.5))
    m.flush()
    out = report(
        store, refs, Thresholds(min_rows=1), T0, T0, now=time.time()
    )  # the replica is alive
    assert out.window.rows == 20
    assert out.to_json()["lost"] == [
        {"replica": "r", "after": None, "dropped_rows": 10, "reason": "queue overrun"}
    ]


def test_a_rollout_reports_each_version(repo: Path, store: Any) -> None:
    refs = References(repo)
    rng = np.random.default_rng(6)
    x = _data(3000, rng)
    codes = rng.integers(0, 3, len(x))
    s = rng.random(len(x)).astype(np.float32)
    m = Monitor(store, refs, replica="r")
    m.observe(_obs(x, T0 + 0.5, s, m=Scored("1,2,3", s, codes, ("1", "2", "3"))))
    m.flush()
    out = report(store, refs, Thresholds(min_rows=500), T0, T0, now=T0 + 1)
    versions = {v["version"]: v for v in out.to_json()["models"]["m"]["versions"]}
    assert {k: v["rows"] for k, v in versions.items()} == {
        str(i + 1): int((codes == i).sum()) for i in range(3)
    }
    assert versions["3"]["status"] == "no_reference" and "bins" not in versions["3"]["score"]
    assert versions["1"]["status"] == versions["2"]["status"] == "ok"
    binner = refs.get("m", "2")
    want = binner.score_counts(s[codes == 1])
    assert versions["2"]["score"]["bins"]["current"] == want.tolist()


def test_the_report_as_json_is_the_wire_answer(repo: Path, store: Any) -> None:
    """``MonitorReport.to_json`` is what the route encodes: the API's answer key for key, in
    its order, at every level (decisions, segments, a version without reference, a replica
    that dropped rows); the report pickles as it is."""
    refs = References(repo)
    rng = np.random.default_rng(10)
    x = _data(1500, rng)
    codes = rng.integers(0, 3, len(x))
    s = rng.random(len(x)).astype(np.float32)
    decided = Observation(
        T0 + 0.5,
        x,
        NAMES,
        {"m": Scored("1,2,3", s, codes, ("1", "2", "3"))},
        s,
        arm_index=rng.integers(-1, 2, len(x)),
        arms=("no_contact", "winback_email"),
        propensity=rng.uniform(0.1, 1.0, len(x)),
        holdout=rng.random(len(x)) < 0.1,
    )
    m = Monitor(store, refs, replica="r", queue_max=1)
    m.observe(decided)
    m.observe(decided)  # the queue is full: dropped, and said
    m.flush()
    out = report(store, refs, Thresholds(min_rows=100), T0, T0, now=T0 + 1)
    wire = out.to_json()
    body = WireReport.model_validate(wire).model_dump(exclude_unset=True)
    assert orjson.dumps(body) == orjson.dumps(wire)
    assert wire["actions"]["decided"] > 0 and wire["lost"][0]["dropped_rows"] == len(x)
    assert [v["status"] for v in wire["models"]["m"]["versions"]].count("no_reference") == 1
    assert all(seg["contact_rate"] is not None for seg in wire["segments"] if seg["rows"])
    assert pickle.loads(pickle.dumps(out)) == out


def test_segments_name_the_generated_values() -> None:
    from feature_store.datagen.schema import PLAN_NAMES, REGION_NAMES

    assert PLAN_TIERS == PLAN_NAMES and REGIONS == REGION_NAMES


def test_gauges_carry_the_answer(repo: Path, store: Any) -> None:
    from serving import metrics
    from serving.monitoring import gauges
    from serving.settings import MonitorSettings

    refs = References(repo)
    m = Monitor(store, refs, replica="r")
    rng = np.random.default_rng(7)
    m.observe(_obs(_data(1200, rng, shift=1.0), time.time()))
    m.flush()
    metrics.RECORDER.drain_gauges()
    answer = gauges.refresh(m, MonitorSettings(window_s=60, min_rows=1000))
    got = metrics.RECORDER.drain_gauges()
    model = answer.models["m"].main
    spend = next(f for f in model.features if f.feature == "spend_30d")
    assert got[("reengage_monitor_feature_psi", ("m", "1", "spend_30d"))] == spend.psi > 0.2
    assert got[("reengage_monitor_score_psi", ("m", "1"))] == model.score.psi
    assert got[("reengage_monitor_rows", ())] == 1200 and got[("reengage_monitor_drift", ())] == 1.0
    assert metrics.RECORDER.drain_gauges() == {}


@pytest.mark.parametrize("join_rows", [4096, 3])
def test_queued_batches_of_a_second_are_binned_as_one(
    repo: Path, store: Any, join_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Joining the queue before binning (in groups up to JOIN_ROWS rows) changes no count."""
    from serving.monitoring import collector

    monkeypatch.setattr(collector, "JOIN_ROWS", join_rows)
    refs = References(repo)
    rng = np.random.default_rng(8)
    parts = [_data(n, rng) for n in (1, 1, 5, 300, 1)]
    scores = [rng.random(len(p)).astype(np.float32) for p in parts]
    joined, alone = Monitor(store, refs, replica="joined"), Monitor(store, refs, replica="alone")
    for x, s in zip(parts, scores):
        joined.observe(_obs(x, T0 + 0.5, s))
    for x, s in zip(parts, scores):
        alone.observe(_obs(x, T0 + 0.5, s))
        alone.flush()
    joined.flush()
    docs = store.items(f"monitor:{T0 // 60}")
    a, b = docs[f"joined:{T0}"], docs[f"alone:{T0}"]
    assert a["rows"] == b["rows"] == 308
    assert a["models"] == b["models"] and a["segments"] == b["segments"]


def test_float32_rows_on_an_edge_fall_where_float64_puts_them() -> None:
    """Edges that are not float32 values: the float32 path bins each row as the float64 rule."""
    edge = 0.1  # not a float32
    doc = {
        "model": "m",
        "fingerprint": "f",
        "rows": 1,
        "features": [
            {
                "feature": "a",
                "kind": "quantile",
                "lo": 0.0,
                "hi": 1.0 / 3,
                "cuts": [edge, 0.2],
                "counts": [0] * 6,
            }
        ],
        "score": {"feature": "score", "lo": 0.0, "hi": 1.0, "cuts": [], "counts": [0] * 4},
    }
    b = Binner.from_doc(doc)
    near = np.array(
        [
            np.float32(edge),
            np.nextafter(np.float32(edge), np.float32(0)),
            np.nextafter(np.float32(edge), np.float32(1)),
            np.float32(1.0 / 3),
            np.nextafter(np.float32(1.0 / 3), np.float32(1)),
            np.float32(0.2),
        ]
        * 5,
        np.float32,
    )
    want = build_ref.counts(near.astype(np.float64), doc["features"][0])
    assert b.feature_counts(near[:, None]).tolist() == want.tolist()  # 30 rows: the float32 path
    assert (
        b.feature_counts(near[:6, None]).tolist() == (want // 5).tolist()
    )  # 6 rows: the broadcast


def test_the_holdout_code_is_the_bandits() -> None:
    from serving.bandit.state.records import REASONS
    from serving.monitoring import _HOLDOUT

    assert REASONS[_HOLDOUT] == "holdout"


def test_features_two_models_bin_alike_are_binned_once_with_the_same_counts(
    tmp_path: Path, store: Any
) -> None:
    rng = np.random.default_rng(9)
    x = _data(5000, rng)
    s = rng.random(len(x))
    sub = [3, 1]  # model "b" reads two of "a"'s columns, in another order
    docs = {
        "a": build_ref.build("a", "fa", NAMES, x, s),
        "b": build_ref.build("b", "fb", tuple(NAMES[j] for j in sub), x[:, sub], s),
        "c": build_ref.build("c", "fc", NAMES[:2], x[:2500, :2] * 2, s[:2500]),
    }  # other bins
    for name, doc in docs.items():
        (tmp_path / name / "1").mkdir(parents=True)
        (tmp_path / name / "1" / "reference.json").write_text(json.dumps(doc))
    refs = References(tmp_path)
    m = Monitor(store, refs, replica="r")
    served = _data(700, rng, shift=0.3)
    scores = rng.random(len(served)).astype(np.float32)
    m.observe(_obs(served, T0 + 0.5, scores, **{k: Scored("1", scores) for k in ("a", "b", "c")}))
    m.flush()
    doc = store.items(f"monitor:{T0 // 60}")[f"r:{T0}"]
    for name in ("a", "b", "c"):
        b = refs.get(name, "1")
        cols = [NAMES.index(f) for f in b.features]
        assert doc["models"][name]["1"]["features"] == b.feature_counts(served[:, cols]).tolist()
    assert m._subset(refs.get("b", "1"), refs.get("a", "1")) is not None  # noqa: SLF001
    assert m._subset(refs.get("c", "1"), refs.get("a", "1")) is None  # noqa: SLF001
