"""`reengage stop` stops the Ray head it started and no other cluster on the machine."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

from serving.server import stop_local_head
from tests.conftest import free_port


def _head(port: int) -> None:
    """A `ray start` head on ``port``; its temp dir is short (Unix socket paths are limited)."""
    ray = shutil.which("ray", path=str(Path(sys.executable).parent))
    tmp = tempfile.mkdtemp(prefix="rh", dir="/tmp")
    subprocess.run(
        [
            ray,
            "start",
            "--head",
            f"--port={port}",
            "--include-dashboard=false",
            "--disable-usage-stats",
            "--num-cpus=1",
            f"--temp-dir={tmp}",
            f"--ray-client-server-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--min-worker-port={free_port()}",
            "--max-worker-port=0",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
    )


def _running(port: int) -> bool:
    for proc in psutil.process_iter(["cmdline"]):
        if (
            f"--gcs_server_port={port}" in (proc.info["cmdline"] or [])
            and proc.status() != psutil.STATUS_ZOMBIE
        ):
            return True
    return False


def test_only_the_head_on_our_port_stops() -> None:
    ours, theirs = free_port(), free_port()
    _head(ours)
    try:
        _head(theirs)
        try:
            assert _running(ours) and _running(theirs)
            assert stop_local_head(ours) >= 3  # GCS, raylet, monitor, agents...
            assert not _running(ours)
            assert _running(theirs)  # `ray stop --force` would have taken it too
        finally:
            stop_local_head(theirs)
    finally:
        stop_local_head(ours)
    assert not _running(theirs)
