"""`reengage loadtest`: SLO flags pass or fail the run, locust's HTML report and CSVs are
kept, and the printed table has one row per endpoint, names as written."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from loadtests.run import endpoint_table, locust_command, slo_violations


def figures(requests: int, failures: int, p99: float) -> dict:
    return {
        "requests": requests,
        "failures": failures,
        "rps": 10.0,
        "failure_rate": failures / requests if requests else 0,
        "p50_ms": p99 / 2,
        "p99_ms": p99,
        "avg_ms": p99 / 2,
        "max_ms": p99,
    }


RESULT = {
    **figures(110, 1, 40.0),
    "scenario": "mixed",
    "users": 4,
    "run_time_s": 5,
    "endpoints": {
        "POST /v1/score": figures(100, 0, 30.0),
        "POST /v2/models/[model]/infer": figures(10, 1, 90.0),
    },
}


def test_slo_violations_name_the_run_and_each_endpoint() -> None:
    assert slo_violations(RESULT) == []
    assert slo_violations(RESULT, p99_ms=100, failure_rate=0.2) == []
    missed = slo_violations(RESULT, p99_ms=50, failure_rate=0.05)
    assert missed == [
        "POST /v2/models/[model]/infer: p99 90 ms > 50 ms",
        "POST /v2/models/[model]/infer: failure rate 10.00% > 5.00%",
    ]
    assert slo_violations({"requests": 0, "endpoints": {}}, p99_ms=10) == ["no request completed"]


def test_table_has_a_row_per_endpoint_with_names_as_written() -> None:
    console = Console(width=200, record=True)
    console.print(endpoint_table(RESULT))
    text = console.export_text()
    assert "POST /v2/models/[model]/infer" in text and "/v2/models//infer" not in text
    assert "POST /v1/score" in text and "all" in text
    assert "{'requests'" not in text  # no raw dict in a cell


def test_locust_writes_an_html_report_when_asked() -> None:
    cmd = locust_command(
        "http://h",
        users=1,
        spawn_rate=1,
        run_time_s=1,
        scenario="score",
        csv_prefix="p",
        html="r.html",
    )
    assert cmd[cmd.index("--html") + 1] == "r.html"


class _Score(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        ids = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["customer_ids"]
        body = json.dumps({"customer_ids": ids}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stub_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Score)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_cli_keeps_html_and_csvs_and_exits_nonzero_on_a_missed_slo(
    stub_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving.cli import app

    monkeypatch.setenv("REENGAGE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COLUMNS", "200")
    base = [
        "loadtest",
        "--host",
        stub_url,
        "--users",
        "2",
        "--spawn-rate",
        "10",
        "--run-time-s",
        "5",
    ]
    ok = CliRunner().invoke(
        app,
        [
            *base,
            "--out-dir",
            str(tmp_path / "ok"),
            "--slo-p99-ms",
            "5000",
            "--slo-failure-rate",
            "0.01",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "SLO met" in ok.output and "POST /v1/score" in ok.output
    assert (tmp_path / "ok" / "report.html").stat().st_size > 1000
    assert (tmp_path / "ok" / "score_stats.csv").exists()
    missed = CliRunner().invoke(
        app, [*base, "--out-dir", str(tmp_path / "missed"), "--slo-p99-ms", "0.001"]
    )
    assert missed.exit_code == 1 and "SLO missed" in missed.output
