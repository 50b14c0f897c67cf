"""Columnar JSON and Arrow answers decode to exactly what the plain encoders give."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pyarrow as pa
import pytest

from serving.codecs.columnar import RowIds, Vocabulary, arrow_bytes, json_bytes, row_id_strings

ARMS = ("discount_offer", "free_shipping", "no_contact", 'quote"and\\slash')


def _columns(n: int, seed: int = 0) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    p = rng.random(n).astype(np.float32)
    p[rng.random(n) < 0.2] = np.nan
    return {
        "customer_ids": rng.integers(0, 2**40, n),
        "found": rng.random(n) < 0.8,
        "churn_probability": p,
        "action": Vocabulary(rng.integers(-1, len(ARMS), n), ARMS),
        "decision_id": RowIds("0123456789abcdef", rng.random(n) < 0.7),
        "model_versions": {"churn": "3", "engagement": "1"},
    }


def _plain(columns: dict[str, object]) -> dict[str, object]:
    """What json.loads of a per-row encoding would give: the reference."""
    out: dict[str, object] = {}
    for k, v in columns.items():
        if isinstance(v, Vocabulary):
            out[k] = [None if c < 0 else v.names[c] for c in v.codes.tolist()]
        elif isinstance(v, RowIds):
            out[k] = row_id_strings(v).tolist()
        elif isinstance(v, np.ndarray):
            out[k] = [None if isinstance(x, float) and np.isnan(x) else x for x in v.tolist()]
        else:
            out[k] = v
    return out


@pytest.mark.parametrize("n", [0, 1, 9, 10, 11, 1234, 10_000])
def test_json_matches_a_per_row_encoding(n: int) -> None:
    columns = _columns(n, seed=n)
    decoded = json.loads(json_bytes(columns))
    expected = _plain(columns)
    assert decoded.keys() == expected.keys()
    for key in expected:
        if key == "churn_probability":
            got, want = np.array(decoded[key], dtype=float), np.array(expected[key], dtype=float)
            np.testing.assert_allclose(got, want.astype(np.float32), rtol=1e-6)
        else:
            assert decoded[key] == expected[key], key


def test_small_and_large_answers_take_different_paths_to_the_same_text() -> None:
    from serving.codecs import columnar

    columns = _columns(columnar.SMALL_ROWS + 5, seed=9)
    large = columnar.json_bytes(columns)  # byte matrices
    small = orjson.dumps(
        {k: columnar._small(v) for k, v in columns.items()}, option=orjson.OPT_SERIALIZE_NUMPY
    )
    assert json.loads(large) == json.loads(small)


def test_json_is_compact_with_no_padding_left() -> None:
    body = json_bytes(_columns(100))
    assert b"\x00" not in body and b" " not in body
    assert orjson.loads(body)["decision_id"]  # orjson parses it too


@pytest.mark.parametrize("n", [0, 1, 1234])
def test_arrow_stream_holds_the_same_columns(n: int) -> None:
    columns = _columns(n, seed=3)
    table = pa.ipc.open_stream(arrow_bytes(columns)).read_all()
    expected = _plain(columns)
    assert json.loads(table.schema.metadata[b"model_versions"]) == expected["model_versions"]
    got = table.to_pydict()
    for key in ("customer_ids", "found", "action", "decision_id"):
        assert got[key] == expected[key], key
    assert pa.types.is_dictionary(table.schema.field("action").type)
    probs = np.array(
        [np.nan if x is None else x for x in got["churn_probability"]], dtype=np.float32
    )
    np.testing.assert_array_equal(
        np.isnan(probs), np.isnan(columns["churn_probability"])
    )  # NaN -> null
