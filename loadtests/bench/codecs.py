"""Encode the columnar answer as JSON and as Arrow, beside the list-based JSON it replaced.

``python -m loadtests.bench.codecs``: a markdown table (docs/benchmarks.md) of encode time,
size and client decode time for 1,000 and 10,000 customers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from serving.codecs.columnar import RowIds, Vocabulary, arrow_bytes, json_bytes, row_id_strings

ARMS = ("discount_offer", "free_shipping", "content_digest", "winback_email", "no_contact")
REASONS = ("policy", "holdout", "contact_cap", "not_found")


def answer(n: int, seed: int = 0) -> dict[str, Any]:
    """The columns of a /v1/score answer for ``n`` customers, as the dataplane builds them."""
    rng = np.random.default_rng(seed)
    return {
        "customer_ids": rng.integers(0, 10**6, n),
        "found": np.ones(n, bool),
        "churn_probability": rng.random(n).astype(np.float32),
        "engagement_probability": rng.random(n).astype(np.float32),
        "action": Vocabulary(rng.integers(0, len(ARMS), n), ARMS),
        "decision_id": RowIds("0123456789abcdef", np.ones(n, bool)),
        "propensity": rng.random(n),
        "reason": Vocabulary(np.zeros(n, np.int64), REASONS),
        "feature_age_s": rng.random(n) * 1e5,
        "features_defaulted": np.zeros(n, bool),
        "model_versions": {"churn": "6", "engagement": "2"},
    }


def as_lists(columns: dict[str, Any]) -> bytes:
    """The encoding before the codec: string columns as Python lists, then orjson."""
    out: dict[str, Any] = {}
    for key, value in columns.items():
        if isinstance(value, Vocabulary):
            out[key] = np.array(value.names + (None,), dtype=object)[value.codes].tolist()
        elif isinstance(value, RowIds):
            out[key] = row_id_strings(value).tolist()
        else:
            out[key] = value
    return orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY)


def _ms(fn: Callable[[], Any], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def main() -> None:
    import pyarrow as pa

    print(
        "| rows | JSON, string columns as lists (before) ms | JSON, columnar codec ms "
        "| Arrow IPC ms | JSON bytes | Arrow bytes "
        "| client decode: json.loads / orjson.loads / pyarrow ms |"
    )
    print("|---|---|---|---|---|---|---|")
    for n, repeat in ((1_000, 200), (10_000, 30)):
        cols = answer(n)
        as_json, as_arrow = json_bytes(cols), arrow_bytes(cols)
        decode = [
            _ms(lambda: json.loads(as_json), repeat),
            _ms(lambda: orjson.loads(as_json), repeat),
            _ms(lambda: pa.ipc.open_stream(as_arrow).read_all(), repeat),
        ]
        print(
            f"| {n:,} | {_ms(lambda: as_lists(cols), repeat):.2f} "
            f"| {_ms(lambda: json_bytes(cols), repeat):.2f} "
            f"| {_ms(lambda: arrow_bytes(cols), repeat):.2f} "
            f"| {len(as_json):,} | {len(as_arrow):,} "
            f"| {' / '.join(f'{d:.2f}' for d in decode)} |"
        )


if __name__ == "__main__":
    main()
