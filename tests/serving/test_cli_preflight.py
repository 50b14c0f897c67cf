"""A CLI that never hangs and says why: `reengage stop` with nothing running exits 0 within
seconds; `reengage serve --state redis` with Redis down is one line naming it and a
non-zero exit, before anything starts (no Ray head, no deployment)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serving.server import gcs_reachable, preflight
from serving.settings import load_settings
from tests.conftest import RedisServer, free_port

SECRET = "pw-PreflightCanary42"


def _cli(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "serving.cli", *args],
        env={**os.environ, **env},
        timeout=timeout,
        capture_output=True,
        text=True,
        check=False,
    )


def test_preflight_names_each_redis_that_is_down_and_what_uses_it(redis_url: str) -> None:
    down = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"
    same = load_settings({"state": "redis", "redis_url": down})
    assert preflight(same) == [
        f"Redis at 127.0.0.1:{down.rsplit(':', 1)[1].split('/')[0]} "
        "(features and bandit state): connection refused"
    ]
    split = load_settings(
        {
            "features": {"backend": "redis", "redis_url": redis_url},
            "bandit": {"backend": "redis", "redis_url": down},
        }
    )
    [line] = preflight(split)
    assert line.endswith("(bandit state): connection refused") and SECRET not in line
    assert preflight(load_settings({"state": "redis", "redis_url": redis_url})) == []
    assert preflight(load_settings({"state": "embedded"})) == []  # nothing to reach


def test_preflight_says_a_wrong_password_and_a_hung_redis(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    try:
        import redis

        redis.Redis(port=server.port).config_set("requirepass", "the-right-one")
        wrong = load_settings(
            {"state": "redis", "redis_url": f"redis://:{SECRET}@127.0.0.1:{server.port}/0"}
        )
        [line] = preflight(wrong)
        assert "authentication failed" in line and SECRET not in line
        server.proc.send_signal(signal.SIGSTOP)  # accepts connections, never answers
        try:
            start = time.monotonic()
            [hung] = preflight(
                load_settings({"state": "redis", "redis_url": server.url}), timeout_s=0.5
            )
            assert "no answer within 0.5 s" in hung and time.monotonic() - start < 3
        finally:
            server.proc.send_signal(signal.SIGCONT)
    finally:
        server.stop()


def test_serve_with_redis_down_is_one_line_and_exit_1(tmp_path: Path) -> None:
    port = free_port()
    done = _cli(
        ["serve", "--state", "redis", "--redis-url", f"redis://:{SECRET}@127.0.0.1:{port}/0"],
        {
            "REENGAGE_DATA_DIR": str(tmp_path / "data"),
            "REENGAGE_SERVER__RAY_PORT": str(free_port()),
        },
        60,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    out = (done.stdout + done.stderr).strip()
    assert out == f"Redis at 127.0.0.1:{port} (features and bandit state): connection refused"
    assert not (
        tmp_path / "data" / "auth"
    ).exists()  # stopped before anything was started or written


def test_stop_with_nothing_running_says_so_within_seconds(tmp_path: Path) -> None:
    gcs = free_port()
    assert not gcs_reachable(f"127.0.0.1:{gcs}", 0.5)
    start = time.monotonic()
    done = _cli(
        ["stop"],
        {"REENGAGE_SERVER__RAY_PORT": str(gcs), "REENGAGE_DATA_DIR": str(tmp_path / "data")},
        60,
    )
    took = time.monotonic() - start
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nothing to stop" in done.stdout and took < 20  # the interpreter and imports included


@pytest.mark.parametrize("address", ["127.0.0.1:1", "no-such-host.invalid:6379", "garbage"])
def test_gcs_reachable_is_false_fast(address: str) -> None:
    start = time.monotonic()
    assert not gcs_reachable(address, 0.5)
    assert time.monotonic() - start < 5
