"""Records to bytes and back: sizes and tags decide what is decoded, TTL what is found."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from feast.protos.feast.types.Value_pb2 import Value as ValueProto

from loadtests.bench.features import demo_objects
from feature_store.online_store.codec import (
    EXPIRED,
    MISSING,
    OK,
    SCHEMA,
    decode,
    decode_generic,
    encode_generic,
    encode_packed,
    values_from_protos,
)
from feature_store.online_store.kv import Replies
from feature_store.online_store.layout import layout_for

VIEWS = {o.name: o for o in demo_objects(Path("/nonexistent"))}
NOW = 10**15


def test_records_of_another_size_are_never_decoded_as_this_layout() -> None:
    """Sizes that add up to N records must not pass for N records: a wrong tag forces sizing."""
    layout = layout_for(VIEWS["customer_profile"])
    vals = np.arange(4 * 12, dtype=np.float32).reshape(4, 12)
    good = encode_packed(layout, np.array([NOW, NOW, NOW, NOW - layout.ttl_us - 1]), vals)
    longer = good[1] + b"\0" * 8  # 8 bytes too long, 8 too short: the total is still 4 records
    shorter = good[2][:-8]
    for found in (np.ones(4, bool), np.array([True, True, True, False, True])):
        records = [good[0], longer, shorter, good[3]]
        dec = decode(layout, Replies(found, records), NOW)
        status = dec.status[found]
        np.testing.assert_array_equal(status, [OK, SCHEMA, SCHEMA, EXPIRED])
        np.testing.assert_array_equal(dec.values[found][0], vals[0])
        assert (dec.ts_us[found] == [NOW, 0, 0, 0]).all()
        if not found.all():
            assert dec.status[3] == MISSING and np.isnan(dec.values[3]).all()


def test_complete_fresh_read_is_all_ok_without_masking() -> None:
    layout = layout_for(VIEWS["customer_activity"])
    vals = np.ones((3, 20), np.float32)
    dec = decode(
        layout, Replies(np.ones(3, bool), encode_packed(layout, np.full(3, NOW), vals)), NOW
    )
    assert dec.all_ok and (dec.status == OK).all() and (dec.ts_us == NOW).all()
    np.testing.assert_array_equal(dec.values, vals)


def test_generic_records_round_trip_and_are_checked_by_tag() -> None:
    contact = layout_for(VIEWS["customer_contact"])
    assert not contact.packed
    row = {
        "email": ValueProto(string_val="c1@example.com"),
        "plan_name": ValueProto(string_val="pro"),
    }
    record = encode_generic(contact, NOW, row)
    back = decode_generic(contact, record)
    assert back["email"].string_val == "c1@example.com" and not back["first_name"].HasField(
        "string_val"
    )
    other = encode_generic(layout_for(VIEWS["customer_profile"]), NOW, {})  # another view's tag
    dec = decode(contact, Replies(np.array([True, False, True]), [record, other]), NOW)
    np.testing.assert_array_equal(dec.status, [OK, MISSING, SCHEMA])
    assert (
        dec.values is None and dec.records == [record, other] and dec.ts_us.tolist() == [NOW, 0, 0]
    )


def test_values_from_protos_leaves_unset_values_nan() -> None:
    layout = layout_for(VIEWS["customer_profile"])
    rows = [{"p_00": ValueProto(float_val=1.5)}, {"p_01": ValueProto()}]
    out = values_from_protos(layout, rows)
    assert out.dtype == np.float32 and out.shape == (2, 12)
    assert out[0, 0] == 1.5 and np.isnan(out[0, 1:]).all() and np.isnan(out[1]).all()


def test_a_single_id_key_is_the_batch_key() -> None:
    """The one-customer shortcut of ``build_keys`` makes the bytes the byte matrix makes,
    for negative, zero and extreme ids."""
    from feature_store.online_store.layout import build_keys

    ids = np.array([0, 1, -1, 2**63 - 1, -(2**63), 123456789], np.int64)
    batch = build_keys(b"proj:view:", ids)
    assert [build_keys(b"proj:view:", ids[i : i + 1])[0] for i in range(len(ids))] == batch
    assert all(type(k) is bytes and len(k) == len(b"proj:view:") + 8 for k in batch)
