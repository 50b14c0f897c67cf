"""A replica's request lines go to their own file in Serve's log directory, not to stderr
(which Ray's log monitor tails and republishes line by line)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from serving import request_log
from serving.deployments.ingress import request_log_file


def test_lines_land_in_the_replicas_jsonl_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # outside Ray, Serve's log directory is ./serve
    request_log.configure(True, stream=request_log_file("r1"))
    try:
        request_log.write({"request_id": "abc", "status": 200})
        request_log.write({"request_id": "def", "status": 503})
        got = (tmp_path / "serve" / "reengage_requests_r1.jsonl").read_text().splitlines()
        assert [json.loads(x)["request_id"] for x in got] == ["abc", "def"]  # flushed line by line
    finally:
        request_log.configure(True, stream=sys.__stderr__)
