"""Bounded, non-blocking logs: refused calls are audited off the event loop within a
per-source rate (the rest counted, never silent); the audit log, the request log and any
``RotatingFile`` rotate by size and age, also with several processes appending."""

from __future__ import annotations

import json
import multiprocessing
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving import audit, logfiles, request_log
from serving.http import create_app
from serving.logfiles import RotatingFile
from serving.settings import RotationSettings
from tests.serving.authkit import auth_dataplane, make_settings

FLOOD_S = 3.0
RATE = 5.0


def _entries(settings: Any) -> list[dict[str, Any]]:
    return list(audit.audit_log(settings).read())


def test_a_flood_of_refused_admin_calls_grows_the_audit_log_by_the_rate_limit(
    tmp_path: Path, model_repo: Path, reader: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, model_repo, refused_log_per_s=RATE)
    writers: set[str] = set()
    real_write = RotatingFile.write

    def spy(self: RotatingFile, line: bytes | str, durable: bool | None = None) -> None:
        writers.add(threading.current_thread().name)
        real_write(self, line, durable)

    monkeypatch.setattr(RotatingFile, "write", spy)
    sent = 0
    with auth_dataplane(settings, reader) as dataplane, TestClient(create_app(dataplane)) as client:
        loop_thread = client.portal.call(
            lambda: threading.current_thread().name
        )  # the app's event loop
        end = time.monotonic() + FLOOD_S
        while time.monotonic() < end:
            r = client.post(
                "/v2/repository/models/churn/unload", headers={"Authorization": "Bearer nope"}
            )
            assert r.status_code == 401
            sent += 1
        assert client.get("/v2/health/live").status_code == 200
        assert audit.audit_log(settings).flush(10)
    entries = _entries(settings)
    refusals = [e for e in entries if e["action"] == "POST /v2/repository/models/churn/unload"]
    summaries = [e for e in entries if e["action"] == "refusals suppressed"]
    assert sent > 10 * (RATE * FLOOD_S), f"only {sent} calls: not a flood"
    assert len(refusals) <= RATE * FLOOD_S + RATE + 1, len(refusals)  # the rate, plus one burst
    assert len(summaries) <= FLOOD_S / audit.SUMMARY_S + 2
    assert (
        len(refusals) + sum(e["details"]["suppressed"] for e in summaries) == sent
    )  # never silent
    assert {e["details"]["source"] for e in refusals + summaries} == {"testclient"}
    assert all(e["result"] == "denied" and e["actor"] == "anonymous" for e in refusals)
    # appended off the event loop: by the writer thread (the test's own flush() above may
    # write the last suppressed counts from its thread, never the loop's)
    assert "audit-writer" in writers and loop_thread not in writers


def test_sources_have_their_own_budget_and_the_table_is_bounded() -> None:
    limiter = audit.RefusalLimiter(per_s=2.0, max_sources=2)
    now = 100.0
    assert [limiter.allow("a", now) for _ in range(3)] == [True, True, False]
    assert [limiter.allow("b", now) for _ in range(3)] == [True, True, False]
    assert limiter.allow("c", now) and limiter.allow("d", now)  # over the table: one shared bucket
    assert not limiter.allow("e", now)
    assert sorted(limiter.suppressed(now)) == [("(other sources)", 1), ("a", 1), ("b", 1)]
    assert limiter.allow("a", now + 0.5)  # refilled at 2 a second
    assert (
        limiter.suppressed(now + 10) == [] and limiter._buckets == {}
    )  # quiet, refilled sources forgotten


def test_the_audit_log_rotates_and_reengage_audit_reads_every_file(tmp_path: Path) -> None:
    log = audit.AuditLog(
        tmp_path / "audit.jsonl", RotationSettings(max_mb=0.001, max_age_h=0, backups=50)
    )
    for i in range(40):
        log.record("repository.unload", actor="ops", model="churn", version=str(i))
    files = logfiles.RotatingFile(tmp_path / "audit.jsonl", backups=50).files()
    assert len(files) > 3 and all(f.stat().st_size < 1024 + 400 for f in files)
    assert [e["version"] for e in log.read()] == [
        str(i) for i in range(40)
    ]  # oldest first, none lost
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in files)


def test_a_file_rotates_by_age(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logfiles, "AGE_CHECK_S", 0.0)
    f = RotatingFile(tmp_path / "x.jsonl", max_age_s=0.3, backups=3)
    f.write(b'{"n": 1}\n')
    f.write(b'{"n": 2}\n')
    assert f.rotations == 0
    time.sleep(0.35)
    f.write(b'{"n": 3}\n')  # the file is older than 0.3 s: this line closes it
    f.write(b'{"n": 4}\n')
    assert f.rotations == 1
    assert (tmp_path / "x.jsonl.1").read_text().splitlines() == ['{"n": 1}', '{"n": 2}', '{"n": 3}']
    assert (tmp_path / "x.jsonl").read_text().splitlines() == ['{"n": 4}']


def _append(path: str, who: int, n: int) -> None:
    f = RotatingFile(Path(path), max_bytes=2000, backups=1000)
    for i in range(n):
        f.write(json.dumps({"who": who, "i": i}).encode() + b"\n")


def test_processes_appending_to_one_file_rotate_it_once_and_lose_no_line(tmp_path: Path) -> None:
    path = tmp_path / "shared.jsonl"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append, args=(str(path), w, 400)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    files = RotatingFile(path, backups=1000).files()
    lines = [json.loads(x) for f in files for x in f.read_text().splitlines()]
    assert len(lines) == 1200 and len(files) > 5
    for w in range(3):  # each writer's lines, in order across the files (oldest first)
        mine = [
            e["i"]
            for f in reversed(files)
            for e in map(json.loads, f.read_text().splitlines())
            if e["who"] == w
        ]
        assert mine == list(range(400))


def test_the_request_log_rotates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from serving.deployments.ingress import request_log_file

    monkeypatch.chdir(tmp_path)  # outside Ray, Serve's log directory is ./serve
    stream = request_log_file("r9", RotationSettings(max_mb=0.001, max_age_h=0, backups=2))
    request_log.configure(True, stream=stream)
    try:
        for i in range(100):
            request_log.write({"request_id": f"{i:04d}", "status": 200})
    finally:
        request_log.configure(True, stream=sys.__stderr__)  # as other tests expect it
    files = stream.files()
    assert [f.name for f in files] == [
        "reengage_requests_r9.jsonl",
        "reengage_requests_r9.jsonl.1",
        "reengage_requests_r9.jsonl.2",
    ]
    assert all(f.stat().st_size < 1024 + 200 for f in files)
    last = [json.loads(x)["request_id"] for x in files[0].read_text().splitlines()]
    assert last[-1] == "0099"
