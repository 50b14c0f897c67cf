"""Crashes answer JSON (issue 12, item 3): a replica killed with ``kill -9`` under load.

- **An Ingress replica.** Six clients score without pause through HAProxy; one of the
  two Ingress replicas is killed. Requests that had not reached it are never lost
  (HAProxy's connection-failure retry and redispatch send them to the live replica).
  Requests in flight on it got no answer at all; HAProxy replays them once on the other
  replica (``retry-on conn-failure empty-response``, set where Ray starts:
  ``serving.server.HAPROXY_ENV``), so clients see answers, not Ray's plain-text
  ``500 Internal Server Error``. Every HTTP answer that is an error is our JSON error;
  only a request in flight while the replica dies may fail: rarely HAProxy still closes
  its connection with no answer at all, or (once in CI, a request sent 0.1 s after the
  kill) answers Ray's own error page, which no setting of Ray's replaces
  (docs/cluster.md).
- **The EmailWriter.** Emails are being written when its replica is killed: the requests
  in flight on it answer 503 naming the email writer, as our JSON error.

Both use the e2e session's application and wait for it to heal before returning.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e
CLIENTS = 6
# SIGKILL to closed sockets: the kernel tears the replica's memory down before its files, and
# its listening socket still completes handshakes meanwhile (a loaded 2-core machine: < 1 s)
DYING_S = 1.0
# a request on a killed writer answers within this, with room for a loaded shared machine
PROMPT_S = 3.0


def _replicas(deployment: str) -> list[dict[str, Any]]:
    from ray.serve.context import _get_global_client

    details = _get_global_client().get_serve_details()
    deps = details["applications"]["reengage"]["deployments"]
    return [r for r in deps[deployment]["replicas"] if r.get("state") == "RUNNING"]


def _wait_healed(url: str, deployment: str, count: int, dead: str, timeout_s: float = 240) -> float:
    """Until ``count`` replicas of ``deployment`` run, none of them the ``dead`` one, and the app
    is ready."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        try:
            ready = httpx.get(f"{url}/v2/health/ready", timeout=5).status_code == 200
        except httpx.HTTPError:
            ready = False
        running = {r["replica_id"] for r in _replicas(deployment)}
        if ready and len(running) == count and dead not in running:
            return time.monotonic() - start
        time.sleep(0.5)
    raise AssertionError(
        f"{deployment} did not get back to {count} running replicas within {timeout_s:.0f} s"
    )


class Load:
    """Clients sending one request after another; every answer kept with its timing."""

    def __init__(self, url: str, clients: int, request: Any) -> None:
        self.url, self.request = url, request
        self.results: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)
        ]

    def __enter__(self) -> "Load":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=120)

    def _run(self, worker: int) -> None:
        n = 0
        with httpx.Client(base_url=self.url, timeout=60) as client:
            while not self._stop.is_set():
                n += 1
                start = time.monotonic()
                try:
                    r = self.request(client, worker, n)
                    out = {
                        "status": r.status_code,
                        "type": r.headers.get("content-type", ""),
                        "body": r.text,
                        "replica": r.headers.get("x-reengage-replica"),
                    }
                except httpx.HTTPError as exc:  # a reset connection: nothing came back at all
                    out = {"status": None, "type": "", "body": repr(exc), "replica": None}
                with self._lock:
                    self.results.append({**out, "start": start, "end": time.monotonic()})


def _is_our_json_error(result: dict[str, Any]) -> bool:
    import json

    if not result["type"].startswith("application/json"):
        return False
    error = json.loads(result["body"]).get("error")
    return isinstance(error, dict) and set(error) == {"type", "message", "field"}


def _is_rays_haproxy_page(result: dict[str, Any]) -> bool:
    """The page Ray's HAProxy config answers for its own 502/503/504 (``errorfile``, 500.http)."""
    return (
        result["status"] == 500
        and result["type"] == "text/plain"
        and result["body"] == "Internal Server Error"
    )


def test_a_killed_ingress_replica_loses_no_request_and_answers_only_json(app_url: str) -> None:
    victims = _replicas("Ingress")
    assert len(victims) == 2, victims
    victim = victims[0]

    def score(client: httpx.Client, worker: int, n: int) -> httpx.Response:
        return client.post(
            "/v1/score", json={"customer_ids": [1 + (worker * 997 + n) % 5000, 2, 3]}
        )

    with Load(app_url, CLIENTS, score) as load:
        time.sleep(3.0)
        killed_at = time.monotonic()
        os.kill(victim["pid"], signal.SIGKILL)
        time.sleep(8.0)
    healed_s = _wait_healed(app_url, "Ingress", 2, victim["replica_id"])
    results = load.results
    dead_at = killed_at + DYING_S
    failed = [r for r in results if r["status"] != 200]
    answered = [r for r in failed if r["status"] is not None]  # an HTTP answer: it must be ours
    in_flight = [r for r in results if r["start"] <= killed_at <= r["end"]]
    after = [r for r in results if r["start"] > dead_at]
    failures = [
        (
            r["status"],
            r["type"],
            r["body"][:60],
            round(r["start"] - killed_at, 3),
            round(r["end"] - killed_at, 3),
        )
        for r in failed
    ]
    print(
        f"\n{len(results)} requests, {len(in_flight)} in flight at the kill, "
        f"{len(after)} after it died; failed "
        f"(status, type, body, start and end after the kill): {failures}; "
        f"healed in {healed_s:.1f} s"
    )
    assert len(after) > 20 and any(
        r["replica"] == victim["replica_id"] for r in results if r["end"] < killed_at
    )
    assert all(r["status"] == 200 for r in after), "a request sent after the replica died was lost"
    # an error answer is ours, or, for a request HAProxy could not get answered while the
    # replica was dying, Ray's own HAProxy error page (no setting of Ray's replaces it, and
    # no code of ours runs on that path: docs/cluster.md); anything else fails
    assert all(
        _is_our_json_error(r) or (_is_rays_haproxy_page(r) and r["start"] <= dead_at)
        for r in answered
    ), "an error that is not our JSON"
    # only requests while the replica dies may fail (no answer, or Ray's page: docs/cluster.md),
    # none sent after it died; a client may lose the request it had in flight and the one it
    # sent next, before HAProxy marked the server down (seen: -9 ms and +70 ms of the kill)
    assert all(r["start"] <= dead_at for r in failed) and len(failed) <= 2 * CLIENTS


def test_a_killed_email_writer_is_a_503_naming_it(app_url: str) -> None:
    writer = _replicas("EmailWriter")
    assert len(writer) == 1, writer

    def reengage(client: httpx.Client, worker: int, n: int) -> httpx.Response:
        return client.post(
            "/v1/reengage",
            json={"customer_id": 10 + worker, "action": "winback_email", "max_tokens": 256},
        )

    with Load(app_url, 3, reengage) as load:
        deadline = time.monotonic() + 120
        while not load.results and time.monotonic() < deadline:  # the writer is warm and writing
            time.sleep(0.2)
        time.sleep(0.3)
        killed_at = time.monotonic()
        os.kill(writer[0]["pid"], signal.SIGKILL)
        time.sleep(1.0)
    healed_s = _wait_healed(app_url, "EmailWriter", 1, writer[0]["replica_id"])
    results = load.results
    failed = [r for r in results if r["status"] != 200]
    print(
        f"\n{len(results)} emails, failed: {[(r['status'], r['body'][:120]) for r in failed]}; "
        f"writer back in {healed_s:.1f} s"
    )
    assert all(_is_our_json_error(r) for r in failed), "an error that is not our JSON"
    # every request on the writer when it died answers a prompt 503 naming it; none is sent
    # again to the new, cold replica to wait out its deadline (a 504: handles.RemoteWriter).
    # A request in flight at the kill that answers 200 was not on the writer yet (scoring).
    in_flight = [r for r in results if r["start"] <= killed_at < r["end"]]
    timings = [
        (r["status"], round(r["start"] - killed_at, 2), round(r["end"] - killed_at, 2))
        for r in in_flight
    ]
    print(f"in flight at the kill (status, start, end after it): {timings}")
    on_writer = [r for r in in_flight if r["status"] != 200]
    assert on_writer, "no email was being written at the kill"
    # sent after the kill: waits for the replacement, within the caller's deadline (a 504
    # naming the writer when its cold start and the email take longer on a loaded machine)
    assert all("the email writer" in json.loads(r["body"])["error"]["message"] for r in failed)
    for r in on_writer:
        assert r["status"] == 503 and '"the email writer is unavailable' in r["body"], r["body"]
        assert "ActorDiedError" in r["body"] or "ActorUnavailableError" in r["body"]
        assert r["end"] - killed_at < PROMPT_S, (
            f"answered {r['end'] - killed_at:.1f} s after the kill"
        )
