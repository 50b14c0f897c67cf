"""Dead letters: decision records the state store refused too many times, set aside.

A record that fails every time (a poison record: one the store rejects for what it
holds, not because the store is down) must not block the decision log behind it. The
committer tries it alone ``bandit.dead_letter_tries`` times, then hands it here: one
JSON line in ``bandit.dead_letter_file`` (default ``<state_path>/dead_letters.jsonl``,
mode 0600, rotated by ``bandit.dead_letter_rotation``), counted in
``reengage_bandit_dead_letters_total``, and one warning in the replica's log.

Each line holds the record as the stores encode it (``records.encode_record``; bytes as
base64), so ``decode_record`` rebuilds it for a replay once the cause is fixed; a record
that cannot be encoded at all (often the very poison) is kept field by field instead
(arrays as dtype, shape and base64; other values as JSON, else their ``repr``). It is
decision-log data, like the decision log itself (customer ids included); the error text
is redacted and the warning names only the batch id and row count.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from feature_store.redact import redact
from serving import metrics
from serving.bandit.state.records import BatchRecord, decode_record, encode_record
from serving.logfiles import RotatingFile
from serving.settings import RotationSettings

log = logging.getLogger("reengage.bandit")


class DeadLetters:
    """Where poison records go; ``path`` None keeps only the metric and the warning."""

    def __init__(
        self, path: Path | None, rotation: RotationSettings | None = None, name: str = "bandit"
    ) -> None:
        rotation = rotation or RotationSettings()
        self.name = name
        self.file = (
            None
            if path is None
            else RotatingFile(
                Path(path),
                max_bytes=rotation.max_bytes,
                max_age_s=rotation.max_age_s,
                backups=rotation.backups,
                durable=True,
            )
        )
        self.count = 0

    def put(self, record: BatchRecord, error: BaseException | str, tries: int) -> None:
        """Set ``record`` aside with its error; never raises (the queue must move on)."""
        try:
            self._put(record, error, tries)
        except Exception:  # a dead letter that cannot be written is logged, never raised
            log.exception(
                "bandit %s: could not set decision batch %s aside", self.name, record.batch_id
            )

    def _put(self, record: BatchRecord, error: BaseException | str, tries: int) -> None:
        self.count += 1
        metrics.dead_letter(self.name, record.n)
        line = {
            "time": round(time.time(), 3),
            "router": self.name,
            "batch_id": record.batch_id,
            "rows": record.n,
            "tries": tries,
            "error": redact(
                error if isinstance(error, str) else f"{type(error).__name__}: {error}"
            ),
            "pid": os.getpid(),
            **_encoded(record),
        }
        where = "no dead-letter file"
        if self.file is not None:
            try:
                self.file.write((json.dumps(line, separators=(",", ":")) + "\n").encode())
                where = str(self.file.path)
            except OSError as exc:
                where = f"dead-letter file {self.file.path} not writable: {exc}"
        log.warning(
            "bandit %s: decision batch %s (%d rows) failed %d times; set aside (%s): %s",
            self.name,
            record.batch_id,
            record.n,
            tries,
            where,
            line["error"],
        )


def read_dead_letters(path: Path) -> list[tuple[dict[str, Any], BatchRecord | None]]:
    """Every dead letter in ``path`` (oldest first) with its record rebuilt for a replay
    (None for one kept field by field: it could not be encoded)."""
    out: list[tuple[dict[str, Any], BatchRecord | None]] = []
    for raw in Path(path).read_text().splitlines():
        entry = json.loads(raw)
        record = None
        if "record" in entry:
            record = decode_record(
                {
                    k: base64.b64decode(v["b64"]) if isinstance(v, dict) else v
                    for k, v in entry["record"].items()
                }
            )
        out.append((entry, record))
    return out


def _encoded(record: BatchRecord) -> dict[str, Any]:
    """``{"record": ...}`` as the stores encode it, else ``{"fields": ...}`` one by one."""
    try:
        fields = encode_record(record)
    except Exception as exc:  # the record is the poison: keep what can be kept
        return {
            "unencodable": f"{type(exc).__name__}: {exc}",
            "fields": {f.name: _field(getattr(record, f.name)) for f in dataclasses.fields(record)},
        }
    return {
        "record": {
            k: {"b64": base64.b64encode(v).decode()} if isinstance(v, bytes) else v
            for k, v in fields.items()
        }
    }


def _field(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {
            "dtype": value.dtype.str,
            "shape": list(value.shape),
            "b64": base64.b64encode(value.tobytes()).decode(),
        }
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value
