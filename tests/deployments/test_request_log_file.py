"""A replica's request lines go to their own file in Serve's log directory, not to stderr
(which Ray's log monitor tails and republishes line by line)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from serving import request_log
from serving.deployments.ingress import request_log_file


def test_lines_land_in_the_replicas_jsonl_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # outside Ray, Serve's log directory is ./serve
    log = request_log.configure(True, stream=request_log_file("r1"))
    try:
        log.handle(log.makeRecord(request_log.LOGGER, logging.INFO, __file__, 0, "request", (), None,
                                  extra={"fields": {"request_id": "abc", "status": 200}}))
        [line] = (tmp_path / "serve" / "reengage_requests_r1.jsonl").read_text().splitlines()
        assert json.loads(line)["request_id"] == "abc"
        handlers = [h for h in log.handlers if isinstance(h.formatter, request_log.JsonFormatter)]
        assert len(handlers) == 1  # the file replaced stderr: one line per request, not two
    finally:
        request_log.configure(True, stream=__import__("sys").__stderr__)
