"""A poison record (one the store refuses every time) goes to the dead letters after
``bandit.dead_letter_tries`` tries, and the decision log moves on; an outage makes none."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np

from serving import metrics
from serving.bandit.state import BatchRecord, GroupCommitter
from serving.bandit.state.deadletter import DeadLetters, read_dead_letters
from serving.settings import RotationSettings
from tests.bandit.conftest import RouterFactory, logged_batches
from tests.bandit.test_bandit_committer import FlakyStore


def record(bid: str, n: int = 2, versions: dict[str, Any] | None = None) -> BatchRecord:
    return BatchRecord(
        bid,
        1.0,
        "uniform",
        "v",
        versions or {},
        ("a", "b"),
        ("x",),
        np.arange(n, dtype=np.int64),
        np.zeros((n, 1), np.float32),
        np.zeros(n, np.int16),
        np.ones(n),
        np.zeros(n, np.uint8),
    )


def poison(bid: str) -> BatchRecord:
    """A record no store can encode: its model versions are not JSON (a set), so
    ``encode_record`` raises inside the store's commit, every time."""
    return record(bid, versions={"churn": {"1", "2"}})


def test_a_poison_record_goes_to_the_dead_letters_and_the_log_moves_on(
    any_router: RouterFactory, tmp_path: Path
) -> None:
    dead_file = tmp_path / "dead" / "dead_letters.jsonl"
    router = any_router(dead_letter_tries=3, dead_letter_file=str(dead_file), flush_interval_s=0.01)
    metrics.RECORDER.drain()
    committer = router.committer
    for rec in (record("good-1"), poison("bad"), record("good-2"), record("good-3")):
        committer.submit(rec)
    assert committer.flush(timeout_s=20), "the queue is stuck behind the poison record"
    committer.submit(record("after"))
    assert committer.flush(timeout_s=10)

    logged = logged_batches(router.settings)
    assert {"good-1", "good-2", "good-3", "after"} <= set(logged) and "bad" not in logged
    assert committer.queued_rows == 0 and committer.healthy
    ((entry, rebuilt),) = read_dead_letters(dead_file)
    assert entry["batch_id"] == "bad" and entry["tries"] == 3 and entry["rows"] == 2
    assert "TypeError" in entry["error"] and "set" in entry["error"]
    assert rebuilt is None and entry["unencodable"].startswith("TypeError")  # kept field by field
    ids = entry["fields"]["customer_ids"]
    assert np.frombuffer(base64.b64decode(ids["b64"]), ids["dtype"]).tolist() == [0, 1]
    assert dead_file.stat().st_mode & 0o777 == 0o600
    counts, _ = metrics.RECORDER.drain()
    assert counts[("reengage_bandit_dead_letters_total", (router.settings.name,))] == 1
    assert counts[("reengage_bandit_dead_letter_rows_total", (router.settings.name,))] == 2


def test_an_outage_makes_no_dead_letters(tmp_path: Path) -> None:
    """The store down for far more than the tries: every record waits and is written."""
    dead = DeadLetters(tmp_path / "dead.jsonl")
    store = FlakyStore(failures=12)
    committer = GroupCommitter(store, flush_interval_s=0.001, max_tries=2, dead_letters=dead)  # type: ignore[arg-type]
    try:
        for bid in ("a", "b", "c"):
            committer.submit(record(bid))
        assert committer.flush(timeout_s=30)
        assert [b for g in store.groups for b in g] == ["a", "b", "c"]
        assert dead.count == 0 and not (tmp_path / "dead.jsonl").exists()
    finally:
        committer.close()


def test_dead_letters_rotate_by_size(tmp_path: Path) -> None:
    path = tmp_path / "dead.jsonl"
    dead = DeadLetters(path, RotationSettings(max_mb=0.002, max_age_h=0, backups=2))  # ~2 KB
    for i in range(12):
        dead.put(record(f"r{i}", n=20), ValueError("always"), 5)
    files = dead.file.files()  # type: ignore[union-attr]
    assert [p.name for p in files] == ["dead.jsonl", "dead.jsonl.1", "dead.jsonl.2"]
    assert all(p.stat().st_size < 2 * 2048 for p in files)
    (_, first), *_ = read_dead_letters(files[-1])
    assert first is not None and first.customer_ids.tolist() == list(
        range(20)
    )  # replayable: decode_record
    kept = [
        json.loads(line)["batch_id"] for p in reversed(files) for line in p.read_text().splitlines()
    ]
    assert (
        kept == sorted(kept, key=lambda b: int(b[1:])) and kept[-1] == "r11"
    )  # oldest dropped, order kept
