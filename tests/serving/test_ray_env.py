"""The environment `reengage serve` starts Ray with: each of Ray's overheads set on purpose."""

from __future__ import annotations

import pytest

from serving.server import ray_env
from serving.settings import load_settings


@pytest.mark.parametrize(("on", "value"), [(False, "0"), (True, "1")])
def test_haproxy_request_metrics_follow_the_setting(
    monkeypatch: pytest.MonkeyPatch, on: bool, value: str
) -> None:
    monkeypatch.delenv("RAY_SERVE_HAPROXY_METRICS_ENABLED", raising=False)
    env = ray_env(load_settings({"server": {"haproxy_metrics": on}}))
    assert env["RAY_SERVE_HAPROXY_METRICS_ENABLED"] == value


def test_an_operators_own_variable_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_SERVE_HAPROXY_METRICS_ENABLED", "1")
    assert ray_env(load_settings({}))["RAY_SERVE_HAPROXY_METRICS_ENABLED"] == "1"


def test_without_haproxy_no_haproxy_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_SERVE_ENABLE_HA_PROXY", raising=False)
    assert "RAY_SERVE_ENABLE_HA_PROXY" not in ray_env(load_settings({"server": {"haproxy": False}}))
