"""`reengage bench flood`'s parts without Ray: the refused call wrk sends (a real wrk
against a small HTTP server), the audit log's bound against a real ``AuditLog`` flooded
in-process, and the audit growth the bench reads."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from loadtests.bench.flood import FLOOD_PATH, WRONG_TOKEN, audit_growth, flood, wrk_scripts
from serving.audit import SUMMARY_S, AuditLog, refusal_lines_bound
from serving.settings import load_settings


class _Refuser(BaseHTTPRequestHandler):
    seen: list[tuple[str, str]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.seen.append((self.path, self.headers.get("Authorization", "")))
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


def test_the_flood_sends_the_admin_call_with_a_wrong_token(tmp_path: Path, wrk: str) -> None:
    scripts = wrk_scripts(tmp_path, customers=1000, ids=10)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refuser)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        r = flood(f"http://127.0.0.1:{server.server_address[1]}", scripts[1], 1, connections=2)
    finally:
        server.shutdown()
        server.server_close()
    assert r["requests"] > 0 and r["status_codes"] == {"401": r["requests"]}
    assert set(_Refuser.seen) == {(FLOOD_PATH, f"Bearer {WRONG_TOKEN}")}
    assert "Bearer" not in scripts[0].read_text()  # /v1/score goes without a token


def test_a_flooded_audit_log_stays_within_the_bound_and_counts_every_refusal(
    tmp_path: Path,
) -> None:
    rate, seconds = 5.0, 2.5
    settings = load_settings({"data_dir": str(tmp_path), "auth": {"refused_log_per_s": rate}})
    assert settings.auth.audit_log is not None
    log = AuditLog(settings.auth.audit_log, settings.auth.audit_rotation, refused_per_s=rate)
    start, sent = time.time(), 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        log.refused("POST /v1/admin/x", actor="anonymous", source="10.0.0.1", message="401")
        sent += 1
    assert log.flush(10)
    growth = audit_growth(settings, start, time.time())
    assert sent > 20 * refusal_lines_bound(rate, seconds), "not a flood"
    assert growth["lines"] <= refusal_lines_bound(rate, time.time() - start), growth
    assert growth["refusals"] + growth["suppressed"] == sent  # never silence
    assert 1 <= growth["summaries"] <= seconds / SUMMARY_S + 2


def test_the_bound_is_a_full_bucket_its_refill_and_a_summary_a_second() -> None:
    assert refusal_lines_bound(5.0, 30.0) == 5 + 150 + 30 + 1
    assert refusal_lines_bound(0.5, 10.0) == 1 + 5 + 10 + 1  # a bucket holds one line at least
