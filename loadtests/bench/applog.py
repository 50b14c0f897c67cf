"""Our replicas' own view of a benchmark window, for `reengage bench score`.

Each request's JSON line (``serving.request_log``) records ``latency_ms`` from our
outermost middleware's start to the last byte handed back to Serve. wrk's latency adds
what lies outside our app: Serve's direct ingress and uvicorn, HAProxy, the kernel and the
scheduler of a shared machine. The two side by side say whose the tail is: on these 2
cores, hello-world Serve's own p99 at one connection is often above our app's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson

PATTERN = "reengage_requests_*.jsonl"  # serving.deployments.ingress.request_log_file
Mark = dict[Path, int]


class AppLatency:
    """Latencies our replicas logged for one route between a ``mark`` and now."""

    def __init__(self, logs_dir: Path, route: str = "/v1/score") -> None:
        self.logs_dir, self.route = logs_dir, route

    def mark(self) -> Mark:
        """Where each replica's request log ends now."""
        return {path: path.stat().st_size for path in self.logs_dir.glob(PATTERN)}

    def since(self, mark: Mark) -> np.ndarray:
        """``latency_ms`` of the route's complete lines written after ``mark`` (files started
        since count from their start), in no particular order."""
        latencies: list[float] = []
        for path in self.logs_dir.glob(PATTERN):
            with path.open("rb") as f:
                f.seek(mark.get(path, 0))
                data = f.read()
            for line in data[
                : data.rfind(b"\n") + 1
            ].splitlines():  # a line still being written waits
                if line.startswith(b"{"):
                    record = orjson.loads(line)
                    if record.get("route") == self.route and "latency_ms" in record:
                        latencies.append(record["latency_ms"])
        return np.asarray(latencies, np.float64)

    def summary(self, mark: Mark) -> dict[str, float | int | None]:
        """p50 and p99 (ms) of the window and how many requests they cover (None without any:
        the request log is off, ``server.request_log``)."""
        latencies = self.since(mark)
        if not len(latencies):
            return {"app_requests": 0, "app_p50_ms": None, "app_p99_ms": None}
        p50, p99 = np.percentile(latencies, [50, 99]).tolist()
        return {"app_requests": len(latencies), "app_p50_ms": p50, "app_p99_ms": p99}


def serve_logs_dir() -> Path:
    """The Ray session's Serve log directory, where replicas write their request logs (the
    driver must be connected to the session on this node)."""
    from ray.serve._private.logging_utils import get_serve_logs_dir

    return Path(get_serve_logs_dir())
