"""A frozen email writer (SIGSTOP: it enforces no deadline of its own) is a 504 naming it,
at the caller's deadline, and the application keeps scoring meanwhile."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from serving.settings import Settings

pytestmark = pytest.mark.e2e


def _writer_pid() -> int:
    """The session app's running writer replica, from Serve's own details (this driver's
    cluster; the split-topology test deploys another app beside it)."""
    from ray.serve.context import _get_global_client

    from serving.app import APP_NAME

    deployments = _get_global_client().get_serve_details()["applications"][APP_NAME]["deployments"]
    running = [r for r in deployments["EmailWriter"]["replicas"] if r.get("state") == "RUNNING"]
    assert len(running) == 1, running
    return int(running[0]["pid"])


def test_a_frozen_writer_is_a_504_at_the_callers_deadline(app_url: str, settings: Settings) -> None:
    deadline = (
        settings.llm.timeout_s + 2.0
    )  # what the Ingress gives the writer (deployments/ingress.py)
    pid = _writer_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        with httpx.Client(base_url=app_url, timeout=120) as client:
            t0 = time.monotonic()
            frozen = client.post(
                "/v1/reengage", json={"customer_id": 7, "action": "discount_offer"}
            )
            waited = time.monotonic() - t0
            scored = client.post(
                "/v1/score", json={"customer_ids": [7, 8]}
            )  # scoring is unaffected
    finally:
        os.kill(pid, signal.SIGCONT)
    assert frozen.status_code == 504, frozen.text
    err = frozen.json()["error"]
    assert err["type"] == "timeout" and "email writer" in err["message"]
    assert deadline - 0.5 <= waited <= deadline + 5.0
    assert scored.status_code == 200
    with httpx.Client(base_url=app_url, timeout=120) as client:  # and the writer answers again
        assert (
            client.post(
                "/v1/reengage", json={"customer_id": 7, "action": "discount_offer"}
            ).status_code
            == 200
        )
