"""One switch moves features and bandit state together; a multi-node cluster with embedded
state is warned about; the Ray head never takes Redis's port and its own error is shown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from serving import server
from serving.cli import app
from serving.deployments.cluster import embedded_state_warning
from serving.settings import load_settings


def test_state_redis_moves_features_and_bandit_together(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings({"state": "redis", "redis_url": "redis://cache:6379/2"})
    assert (s.features.backend, s.bandit.backend) == ("redis", "redis")
    assert s.features.redis_url == s.bandit.redis_url == "redis://cache:6379/2"
    monkeypatch.setenv("REENGAGE_STATE", "redis")
    s = load_settings()
    assert (s.features.backend, s.bandit.backend) == ("redis", "redis")
    assert load_settings({"state": "embedded"}).bandit.backend == "embedded"


def test_without_the_switch_each_section_keeps_its_own_backend() -> None:
    s = load_settings({"features": {"backend": "redis"}})
    assert (s.features.backend, s.bandit.backend) == ("redis", "embedded")


def test_serve_state_option_reaches_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    monkeypatch.setenv("REENGAGE_DATA_DIR", str(tmp_path))
    seen: dict[str, Any] = {}
    monkeypatch.setattr(server, "start_head", lambda settings: seen.setdefault("head", settings))

    def deploy(settings, args, address):
        seen["args"] = args
        raise SystemExit(0)

    monkeypatch.setattr(server, "deploy", deploy)
    CliRunner().invoke(
        app, ["serve", "--state", "redis", "--redis-url", redis_url]
    )  # the admin token goes there
    s = load_settings(seen["args"])  # what the replicas rebuild their settings from
    assert (s.features.backend, s.bandit.backend, s.bandit.redis_url) == (
        "redis",
        "redis",
        redis_url,
    )
    assert seen["head"].server.ray_port != 6379


def test_serve_with_the_state_redis_down_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REENGAGE_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(
        server, "start_head", lambda settings: pytest.fail("Ray started with its state down")
    )
    result = CliRunner().invoke(
        app, ["serve", "--state", "redis", "--redis-url", "redis://:pw-secret@127.0.0.1:1/0"]
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert (
        "Redis at 127.0.0.1:1 (features and bandit state)" in result.output
        and "pw-secret" not in result.output
    )


def test_multi_node_with_embedded_state_is_warned_loudly() -> None:
    embedded = load_settings({})
    assert embedded_state_warning(embedded, 1) is None
    message = embedded_state_warning(embedded, 2)
    assert (
        message
        and "2 nodes" in message
        and "features and bandit" in message
        and "--state redis" in message
    )
    assert embedded_state_warning(load_settings({"state": "redis"}), 3) is None
    half = load_settings({"features": {"backend": "redis"}})
    assert "the bandit state is embedded" in embedded_state_warning(half, 2)


def test_ray_head_never_on_the_redis_port() -> None:
    s = load_settings({})
    assert s.server.ray_port != 6379
    clash = load_settings(
        {"state": "redis", "redis_url": f"redis://127.0.0.1:{s.server.ray_port}/0"}
    )
    with pytest.raises(server.RayStartError, match="ray_port"):
        server.start_head(clash)


def test_ray_start_failure_shows_rays_own_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REENGAGE_DATA_DIR", str(tmp_path))
    fake = tmp_path / "ray"
    fake.write_text(
        "#!/bin/sh\necho 'ConnectionError: Ray is trying to start at 127.0.0.1:6390, "
        "but is already running'\nexit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setattr(server, "_ray_binary", lambda: str(fake))
    with pytest.raises(server.RayStartError, match="already running") as err:
        server.start_head(load_settings({}))
    assert "--port=6390" in str(err.value)
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 1 and "but is already running" in " ".join(result.output.split())
