"""A private redis-server for the benchmarks that read or write Redis.

Why its own module: `reengage bench features` and `bench bandit` both want a Redis
nobody else uses, on a free port, gone when the bench ends, unless a URL is given.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator


@contextlib.contextmanager
def private_redis(url: str | None) -> Iterator[str | None]:
    """The given Redis, or a private redis-server on a free port when one is installed."""
    if url is not None or shutil.which("redis-server") is None:
        yield url
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                tmp,
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            time.sleep(0.5)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(timeout=10)
