"""A refused call's source behind proxies (``auth.trusted_proxies``): X-Forwarded-For is
read only from a trusted peer, right to left, up to the first address that is no trusted
proxy; a caller's own header never names its source. Through the real app, each caller
behind the proxy gets its own rate; and uvicorn, as Ray starts it with ``ray_env``, keeps
the real peer instead of a loopback caller's header."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient

from serving import audit
from serving.http import create_app
from serving.security.client_source import UNKNOWN, ClientSource, parse_address
from serving.server import PROXY_HEADERS_ENV, ray_env
from serving.settings import load_settings
from tests.serving.authkit import auth_dataplane, make_settings

LB = ["10.0.0.0/8", "127.0.0.1", "::1"]  # a load balancer's network, and loopback


def _scope(peer: str | None, *forwarded: str) -> dict[str, Any]:
    headers = [(b"x-forwarded-for", f.encode()) for f in forwarded]
    return {"type": "http", "client": (peer, 5000) if peer else None, "headers": headers}


def _source(trusted: list[str]) -> ClientSource:
    return ClientSource(ipaddress.ip_network(t) for t in trusted)


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    source = _source([])
    assert source(_scope("127.0.0.1", "203.0.113.9")) == "127.0.0.1"
    assert source(_scope("198.51.100.4")) == "198.51.100.4"
    assert source(_scope(None, "203.0.113.9")) == UNKNOWN


def test_a_spoofed_header_from_an_untrusted_peer_is_ignored() -> None:
    assert _source(LB)(_scope("198.51.100.4", "203.0.113.9")) == "198.51.100.4"


def test_the_address_a_trusted_proxy_appended_is_the_source() -> None:
    source = _source(LB)
    # the caller wrote "203.0.113.9" itself; the load balancer appended what it saw
    assert source(_scope("10.1.2.3", "203.0.113.9, 198.51.100.4")) == "198.51.100.4"
    # two trusted proxies in a row: skipped, right to left
    assert source(_scope("127.0.0.1", "203.0.113.9, 198.51.100.4, 10.9.9.9")) == "198.51.100.4"
    # several headers are one list, in order
    assert source(_scope("10.1.2.3", "203.0.113.9", "198.51.100.4")) == "198.51.100.4"
    # a trusted peer that added nothing: the peer itself
    assert source(_scope("10.1.2.3")) == "10.1.2.3"
    # every hop a trusted proxy: the first
    assert source(_scope("10.1.2.3", "10.0.0.7, 10.0.0.8")) == "10.0.0.7"


def test_addresses_with_ports_ipv6_and_garbage() -> None:
    source = _source(LB)
    assert source(_scope("::1", "[2001:db8::7]:443")) == "2001:db8::7"
    assert source(_scope("::ffff:10.1.2.3", "198.51.100.4:8080")) == "198.51.100.4"
    assert source(_scope("10.1.2.3", "198.51.100.4, not-an-address")) == UNKNOWN
    assert parse_address("2001:db8::1") == ipaddress.ip_address("2001:db8::1")
    assert parse_address("[::1") is None and parse_address("host.example") is None


def test_the_setting_takes_addresses_and_networks() -> None:
    auth = load_settings({"auth": {"trusted_proxies": ["127.0.0.1", "10.0.0.0/8"]}}).auth
    assert [str(n) for n in auth.trusted_proxies] == ["127.0.0.1/32", "10.0.0.0/8"]
    assert load_settings({}).auth.trusted_proxies == []
    with pytest.raises(ValueError, match="trusted_proxies"):
        load_settings({"auth": {"trusted_proxies": ["10.0.0.1/8"]}})  # host bits set


def _refuse(client: TestClient, forwarded: str | None, n: int) -> None:
    headers = {"Authorization": "Bearer nope"}
    if forwarded:
        headers["X-Forwarded-For"] = forwarded
    for _ in range(n):
        assert client.post("/v2/repository/models/churn/unload", headers=headers).status_code == 401


def _sources(settings: Any) -> list[str]:
    entries = audit.audit_log(settings).read()
    return [e["details"]["source"] for e in entries if e["action"].startswith("POST ")]


@pytest.mark.parametrize("trusted", [[], LB])
def test_through_the_app_each_caller_behind_the_proxy_has_its_own_rate(
    tmp_path: Path, model_repo: Path, reader: Any, trusted: list[str]
) -> None:
    settings = make_settings(tmp_path, model_repo, refused_log_per_s=0.01, trusted_proxies=trusted)
    with auth_dataplane(settings, reader) as dataplane:
        app = create_app(dataplane)
        with TestClient(app, client=("10.1.2.3", 5000)) as behind_lb:
            _refuse(behind_lb, "198.51.100.66", 20)  # a flooder behind the load balancer
            _refuse(behind_lb, "203.0.113.9, 198.51.100.4", 1)  # another caller after it
        with TestClient(app, client=("192.0.2.1", 5000)) as direct:
            _refuse(direct, "198.51.100.4", 1)  # a caller naming someone else
        assert audit.audit_log(settings).flush(10)
    found = _sources(settings)
    if trusted:  # one line each: the flooder's rate spent, the other caller still written
        assert found == ["198.51.100.66", "198.51.100.4", "192.0.2.1"]
    else:  # one bucket for everything behind the load balancer: the other caller's line lost
        assert found == ["10.1.2.3", "192.0.2.1"]


def _uvicorn_client(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Any:
    """scope["client"] as the app sees it under uvicorn configured as Ray configures it
    (``ray.serve._private.http_util.start_asgi_http_server``: proxy_headers left on)."""
    for key in PROXY_HEADERS_ENV:
        monkeypatch.delenv(key, raising=False)
        if key in env:
            monkeypatch.setenv(key, env[key])
    seen: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["client"])

    config = uvicorn.Config(app, lifespan="off", log_config=None, log_level=None)
    config.load()
    scope = _scope("127.0.0.1", "203.0.113.9")
    import asyncio

    asyncio.run(config.loaded_app(scope, None, None))
    return seen[0]


def test_uvicorn_as_ray_starts_keeps_the_peer(monkeypatch: pytest.MonkeyPatch) -> None:
    # uvicorn's default: a loopback peer (HAProxy, to a replica on its node) is believed
    assert _uvicorn_client(monkeypatch, {})[0] == "203.0.113.9"
    env = ray_env(load_settings({}))
    assert env["FORWARDED_ALLOW_IPS"] == ""
    assert _uvicorn_client(monkeypatch, env) == ("127.0.0.1", 5000)
