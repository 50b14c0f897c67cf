"""An application on its own Ray head, in its own process, until told to stop:
``python -m tests.e2e.serve_driver SETTINGS_JSON``.

An e2e session's driver is connected to the session's cluster, so an application that
needs settings of its own (a password-protected Redis, no bootstrap token, a rate limit)
and a Ray session of its own (whose logs a test reads) runs here: a private ``ray start
--head`` as `reengage bench` starts one (``loadtests.bench.targets.ray_serve``), the app
deployed as `reengage serve` deploys it. Prints one JSON line ``{"url", "session_dir"}``
once the app is ready, then waits for a line on stdin and shuts everything down.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from serving.settings import load_settings, project_root

START_S = 600  # a private Ray head, then the deploy, on a shared 2-core machine


@contextlib.contextmanager
def running(overrides: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Start the driver with ``overrides``; yield its ``{"url", "session_dir"}`` once the
    app is ready; stop it (and its Ray head) on the way out."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.serve_driver", json.dumps(overrides)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=project_root(),
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
    )
    try:
        yield _first_json(proc, START_S)
    finally:
        stop_driver(proc, timeout_s=120)


def stop_driver(proc: subprocess.Popen[str], timeout_s: float) -> None:
    """Ask a driver that waits on stdin (this one, or a cluster test's) to shut its app and
    Ray head down; kill it if it has not within ``timeout_s``."""
    if proc.poll() is not None:
        return
    assert proc.stdin is not None
    proc.stdin.write("stop\n")
    proc.stdin.flush()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


def _first_json(proc: subprocess.Popen[str], timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    while time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            line = proc.stdout.readline()
            if line.startswith("{"):
                return dict(json.loads(line))
    raise AssertionError(f"the serve driver gave no answer (exit {proc.poll()}): see its stderr")


def main(overrides: dict) -> None:
    import ray

    from loadtests.bench.targets import ray_serve

    settings = load_settings(overrides)
    workdir = Path(tempfile.mkdtemp(prefix="reengage-driver-"))
    with ray_serve(settings, workdir, hello=False, args=overrides) as url:
        session_dir = ray._private.worker._global_node.get_session_dir_path()
        print(
            json.dumps({"url": url, "session_dir": session_dir, "head_log": str(workdir)}),
            flush=True,
        )
        sys.stdin.readline()


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
