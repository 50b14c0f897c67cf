"""The state package's own pieces: scripts shipped as package data, the shared record codec."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from serving.bandit.state.records import (
    BatchRecord,
    Pending,
    decode_record,
    encode_meta,
    encode_record,
)
from serving.bandit.state.redis_store import lua

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / "serving" / "bandit" / "state"


def test_lua_scripts_load_and_a_non_editable_install_carries_them() -> None:
    scripts = sorted(p.name for p in (STATE / "lua").glob("*.lua"))
    assert scripts == ["reserve.lua", "reward_add.lua", "reward_discount.lua", "reward_head.lua"]
    assert all("redis.call" in lua(name) for name in scripts)
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]
    patterns = package_data["serving.bandit.state"]
    assert {p.name for pattern in patterns for p in STATE.glob(pattern)} == set(scripts)


def test_record_codec_round_trips_what_both_stores_write() -> None:
    rec = BatchRecord(
        "0123456789abcdef",
        1.5,
        "thompson",
        "thompson:x:3",
        {"churn": "2"},
        ("a", "b"),
        ("c0", "c1"),
        np.array([7, 8, 9]),
        np.arange(6, dtype=np.float32).reshape(3, 2),
        np.array([1, -1, 0], np.int16),
        np.array([0.5, np.nan, 1.0]),
        np.array([0, 3, 1], np.uint8),
        np.arange(3, dtype=np.uint64),
        None,
    )
    as_redis = {
        k: (v if isinstance(v, bytes) else str(v).encode())
        for k, v in encode_record(rec).items()
        if v is not None
    }
    for fields in (encode_record(rec), as_redis):
        back = decode_record(fields)
        assert (back.batch_id, back.t, back.model_versions, back.arms) == (
            rec.batch_id,
            rec.t,
            rec.model_versions,
            rec.arms,
        )
        np.testing.assert_array_equal(back.context, rec.context)
        np.testing.assert_array_equal(back.arm_index, rec.arm_index)
        np.testing.assert_array_equal(back.feature_digest, rec.feature_digest)
        assert back.feature_ts is None


def test_pending_fill_decodes_a_whole_batch_or_one_row_alike() -> None:
    meta = encode_meta(np.array([2, 0, 1]), np.array([0, 1, 0]))
    ctx = np.arange(6, dtype="<f4").reshape(3, 2)
    whole, one = Pending.empty(2, 2), Pending.empty(2, 2)
    whole.fill(
        np.array([0, 1]), 5.0, 2, meta, ctx.tobytes(), np.array([2, 0])
    )  # sqlite: the batch's blobs
    one.fill(
        np.array([0]), 5.0, 2, meta[8:12], ctx[2].tobytes(), np.zeros(1, np.int64)
    )  # Redis: one row's bytes
    one.fill(np.array([1]), 5.0, 2, meta[0:4], ctx[0].tobytes(), np.zeros(1, np.int64))
    for p in (whole, one):
        assert (
            list(p.arm) == [1, 2] and list(p.reason) == [0, 0] and p.found.all() and p.dim_ok.all()
        )
        np.testing.assert_array_equal(p.context, ctx[[2, 0]])
    narrow = Pending.empty(1, 3)
    narrow.fill(
        np.array([0]), 5.0, 2, meta, ctx.tobytes(), np.array([1])
    )  # context layout changed since
    assert narrow.found[0] and not narrow.dim_ok[0] and narrow.arm[0] == 0


@pytest.mark.parametrize(
    "array",
    [
        np.array([1.7e9]),
        np.zeros((3, 2)),
        np.arange(5, dtype=np.uint64),
        np.zeros((1000, 3), np.float32),
        np.zeros(0),
        np.zeros((2, 3), ">f8"),
    ],
)
def test_stored_arrays_are_the_bytes_np_save_writes(array: np.ndarray) -> None:
    """Feature digests and timestamps keep the .npy format (old logs stay readable) though
    the header is cached per dtype and shape."""
    import io

    from serving.bandit.state.records import _from_npy, _npy

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    assert _npy(array) == buf.getvalue()
    back = _from_npy(_npy(array))
    assert back.dtype == array.dtype and np.array_equal(back, array)
