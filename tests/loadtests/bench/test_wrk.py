"""wrk as the load generator of `reengage bench score`: the pure parts (bodies, Lua script,
its output) and one real wrk run against a tiny local HTTP server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from loadtests.bench.wrk import WRK_MARK, cpu_share, lua_script, parse_wrk, request_bodies, run_wrk

WRK_OUTPUT = (
    """Running 2s test @ http://127.0.0.1:8000/v1/score
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.10ms    1.20ms  30.00ms   90.00%
    Req/Sec   780.00     50.00     0.90k    70.00%
  1560 requests in 2.00s, 1.20MB read
  Non-2xx or 3xx responses: 3
Requests/sec:    780.00
Transfer/sec:      0.60MB
"""
    'WRK_JSON {"requests":1560,"duration_us":2000000,"bytes":1258291,"p50_us":4900.0,'
    '"p99_us":12500.5,"mean_us":5100.0,"max_us":30000.0,'
    '"errors":{"connect":0,"read":1,"write":0,"status":3,"timeout":2},'
    '"status_codes":{"503":2,"429":1},"error_sample":"{\\u0022error\\u0022: 1}"}\n'
)


def test_request_bodies_hold_distinct_existing_ids() -> None:
    bodies = request_bodies(customers=500, ids=100, count=5, seed=3)
    assert len(bodies) == 5
    for body in bodies:
        ids = json.loads(body)["customer_ids"]
        assert len(ids) == len(set(ids)) == 100
        assert min(ids) >= 1 and max(ids) <= 500
    assert len({tuple(json.loads(b)["customer_ids"]) for b in bodies}) == 5  # not one body repeated
    assert request_bodies(500, 100, 5, seed=3) == bodies
    assert "\n" not in "".join(bodies)  # one body a line in the bodies file
    assert sorted(json.loads(request_bodies(10, 10, 1)[0])["customer_ids"]) == list(range(1, 11))
    with pytest.raises(ValueError):
        request_bodies(customers=10, ids=11, count=1)


def test_lua_script_names_path_file_and_reports_json(tmp_path: Path) -> None:
    script = lua_script(tmp_path / "bodies-10.txt", "/v1/score")
    assert (
        'local path, file, headers = "/v1/score", "'
        + str(tmp_path / "bodies-10.txt")
        + '", {["Content-Type"] = "application/json"}'
    ) in script
    assert 'wrk.format("POST", path, headers, line)' in script
    assert f"io.write(string.format('{WRK_MARK}" in script
    assert "latency:percentile(50), latency:percentile(99)" in script
    assert (
        "%(" not in script and "%%" not in script
    )  # every placeholder filled, every escape undone
    assert "i % n + 1" in script


def test_parse_wrk_reads_the_done_hook_line() -> None:
    r = parse_wrk(WRK_OUTPUT)
    assert (
        r["requests"] == 1560 and r["ok"] == 1557 and r["req_s"] == pytest.approx(778.5)
    )  # 2xx only
    assert r["p50_ms"] == pytest.approx(4.9) and r["p99_ms"] == pytest.approx(12.5005)
    assert r["non_2xx"] == 3 and r["errors"] == 6
    assert r["error_kinds"]["timeout"] == 2 and r["status_codes"] == {"503": 2, "429": 1}
    assert r["error_sample"] == '{"error": 1}'
    none = parse_wrk(WRK_OUTPUT.replace('"requests":1560', '"requests":0'))
    assert none["req_s"] == 0.0 and none["p50_ms"] is None and none["p99_ms"] is None
    with pytest.raises(ValueError, match="WRK_JSON"):
        parse_wrk(WRK_OUTPUT.replace(WRK_MARK, "something else "))


def test_cpu_share() -> None:
    assert cpu_share(1.5, 3.0) == pytest.approx(0.5)
    assert cpu_share(1.0, 0.0) == 0.0


FAILED = (
    b'{"error": {"type": "boom", "message": "a\\\\b \\"q\\"\\n\tc"}}'  # to escape in the sample
)


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.path, self.headers.get("Content-Type", ""), body))
        fail = len(self.seen) % 10 == 0  # every tenth one fails
        answer = FAILED if fail else b'{"ok":true}'
        self.send_response(500 if fail else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


def test_wrk_posts_the_bodies_and_reports(tmp_path: Path, wrk: str) -> None:
    bodies = request_bodies(customers=1000, ids=7, count=9, seed=1)
    (tmp_path / "bodies.txt").write_text("\n".join(bodies) + "\n")
    (tmp_path / "wrk.lua").write_text(lua_script(tmp_path / "bodies.txt", "/v1/score"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/score"
        r = run_wrk(url, tmp_path / "wrk.lua", concurrency=2, seconds=1, threads=2)
    finally:
        server.shutdown()
        server.server_close()
    seen = _Recorder.seen
    assert r["requests"] > 0 and len(seen) >= r["requests"]
    assert {path for path, _, _ in seen} == {"/v1/score"}
    assert {ctype for _, ctype, _ in seen} == {"application/json"}
    assert {body.decode() for _, _, body in seen} <= set(bodies)
    assert len({body for _, _, body in seen}) > 1  # it cycles through the bodies
    assert r["non_2xx"] >= 1 and r["non_2xx"] <= r["requests"]
    assert r["status_codes"] == {
        "500": r["non_2xx"]
    }  # counted by the script's response hook, both threads
    assert r["error_sample"] == FAILED.decode()
    assert r["ok"] == r["requests"] - r["non_2xx"]
    assert 0.0 <= r["wrk_cpu"] < 4.0 and r["p99_ms"] >= r["p50_ms"] > 0
