"""A graceful stop under load, run in its own process (its own Ray head; an e2e session's
driver is connected to another cluster): ``python -m tests.e2e.stop_scenario SETTINGS_JSON``.

Clients post /v1/score in a closed loop (honouring Retry-After, at most 0.2 s); mid-load
the application is stopped as ``reengage stop`` does (``serving.server.drain_and_shutdown``,
its two steps timed apart). Prints one JSON object: outcomes counted per phase (before the
stop, while draining, once Serve shuts down) by status or exception class, the batch ids
of every decision answered, and the timings.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from loadtests.bench.applog import PATTERN, AppLatency, serve_logs_dir
from serving.settings import load_settings

CLIENTS = 6
LOAD_BEFORE_S = 4.0
LOAD_AFTER_S = 2.0


def main(overrides: dict) -> dict:
    from ray import serve

    from serving.app import APP_NAME
    from loadtests.bench.targets import ray_serve
    from serving.deployments import drain_signal

    settings = load_settings(overrides)
    outcomes: Counter[str] = Counter()
    batches: set[str] = set()
    lock = threading.Lock()
    phase = ["load"]
    stop_at = [float("inf")]

    def client(url: str, seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=url, timeout=30) as http:
            while time.monotonic() < stop_at[0]:
                ids = rng.sample(range(1, settings.data.customers + 1), 10)
                sent_in, pause = phase[0], 0.0
                try:
                    r = http.post("/v1/score", json={"customer_ids": ids})
                except httpx.ConnectError:
                    key, got, pause = "refused", (), 0.05  # not taken: nothing listens any more
                except httpx.HTTPError as exc:
                    key, got = type(exc).__name__, ()
                else:
                    key, got = str(r.status_code), ()
                    if r.status_code == 200:
                        got = {d.rsplit("-", 1)[0] for d in r.json().get("decision_id", []) if d}
                    else:
                        try:
                            key += " " + r.json()["error"]["type"]
                        except Exception:  # noqa: BLE001 - not our JSON: say what it was
                            key += " not JSON: " + r.text[:40].replace("\n", " ")
                        pause = min(0.2, float(r.headers.get("retry-after", 0)))
                with lock:
                    outcomes[f"{sent_in}: {key}"] += 1
                    batches.update(got)
                time.sleep(pause)

    workdir = Path(tempfile.mkdtemp(prefix="reengage-stop-"))
    with ray_serve(settings, workdir, hello=False) as url:
        app = AppLatency(
            serve_logs_dir()
        )  # as `reengage bench score` reads the replicas' own latency
        mark = app.mark()
        threads = [
            threading.Thread(target=client, args=(url, i), daemon=True) for i in range(CLIENTS)
        ]
        for t in threads:
            t.start()
        time.sleep(LOAD_BEFORE_S)
        in_app = app.summary(mark)
        logged = request_logged(url)
        phase[0] = "draining"
        took = drain_signal.drain(APP_NAME, settings.server.drain_s, 30.0)
        phase[0] = "serve shutdown"
        t0 = time.monotonic()
        serve.shutdown()
        took["serve_shutdown_s"] = time.monotonic() - t0
        stop_at[0] = time.monotonic() + LOAD_AFTER_S
        for t in threads:
            t.join(timeout=60)
    return {
        "outcomes": dict(outcomes),
        "batches": sorted(batches),
        "took": took,
        "request_logged": logged,
        "in_app": in_app,
    }


def request_logged(url: str) -> dict:
    """One request with a known X-Request-ID: its JSON line as a replica wrote it to the
    session's worker logs (None when not found within 5 s)."""
    rid = "stop-scenario-probe"
    echoed = httpx.post(
        f"{url}/v1/score", json={"customer_ids": [1, 2]}, headers={"X-Request-ID": rid}, timeout=30
    ).headers.get("x-request-id")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for path in serve_logs_dir().glob(PATTERN):
            for line in path.read_text(errors="replace").splitlines():
                if rid in line and line.startswith("{"):
                    return {"echoed": echoed, "line": json.loads(line)}
        time.sleep(0.25)
    return {"echoed": echoed, "line": None}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
