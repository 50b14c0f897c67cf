"""``reengage stop`` tells every ingress replica to drain, and waits until they are idle.

Through Ray's internal key-value store (GCS), no actor: the driver writes the moment the
drain was asked for under ``reengage:drain:<app>``; a daemon thread in each ingress
replica reads it every ``POLL_S`` and, when it is newer than the replica itself (a
leftover key never drains a new replica), turns ``serving.drain.STATE`` on and reports
its requests in flight under ``reengage:inflight:<app>:<replica>``. The driver waits until
every report is 0, then shuts Serve down: nothing is in flight when the proxies go.
"""

from __future__ import annotations

import logging
import threading
import time

from serving.drain import STATE, DrainState

POLL_S = 0.25
log = logging.getLogger("reengage")


def _key(app: str) -> bytes:
    return f"reengage:drain:{app}".encode()


def _inflight_prefix(app: str) -> bytes:
    return f"reengage:inflight:{app}:".encode()


def start_watcher(app: str, replica: str, state: DrainState = STATE) -> threading.Thread:
    """In an ingress replica: watch for a drain request made after this replica started."""
    from ray.experimental import internal_kv as kv

    started = time.time()
    report = _inflight_prefix(app) + replica.encode()

    def watch() -> None:
        while True:
            time.sleep(POLL_S)
            try:
                if not state.draining:
                    asked = kv._internal_kv_get(_key(app))
                    if asked is not None and float(asked) > started:
                        state.start()
                        log.warning(
                            "draining: new requests get 503, %d in flight finish", state.inflight
                        )
                if state.draining:
                    kv._internal_kv_put(report, str(state.inflight).encode(), overwrite=True)
            except Exception:  # noqa: BLE001 - the GCS going away at shutdown ends nothing here
                continue

    thread = threading.Thread(target=watch, name="reengage-drain-watcher", daemon=True)
    thread.start()
    return thread


def drain(app: str, settle_s: float, timeout_s: float) -> dict[str, float]:
    """In the driver (connected to the cluster): ask every replica of ``app`` to drain; return
    once each has reported nothing in flight for a poll, after at least ``settle_s`` (load
    balancers see readiness fail), or after ``timeout_s``. Seconds waited, replicas seen."""
    from ray.experimental import internal_kv as kv

    prefix = _inflight_prefix(app)
    for key in kv._internal_kv_list(prefix):  # reports of replicas gone since an earlier stop
        kv._internal_kv_del(key)
    start = time.time()
    kv._internal_kv_put(_key(app), repr(start).encode(), overwrite=True)
    seen: dict[bytes, int] = {}
    while time.time() - start < timeout_s:
        time.sleep(POLL_S)
        seen = {k: int(kv._internal_kv_get(k) or b"0") for k in kv._internal_kv_list(prefix)}
        if time.time() - start >= max(settle_s, 2 * POLL_S) and seen and not any(seen.values()):
            break
    return {
        "drain_wait_s": time.time() - start,
        "replicas": float(len(seen)),
        "left_inflight": float(sum(seen.values())),
    }


def clear(app: str) -> None:
    """After the stop: remove the drain request and the reports."""
    from ray.experimental import internal_kv as kv

    for key in [_key(app), *kv._internal_kv_list(_inflight_prefix(app))]:
        kv._internal_kv_del(key)
