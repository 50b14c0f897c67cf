"""Consent and erasure on a second Serve application with ``state: redis`` (two ingress
replicas on the same Ray cluster as the session app, its own workspace on a private
redis-server), over HTTP: the same guarantees as with the embedded state."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from serving.settings import Settings, load_settings
from tests.conftest import RedisServer
from tests.e2e.conftest import make_workspace, until
from tests.e2e.test_privacy import _by_replica, _online

pytestmark = [pytest.mark.e2e, pytest.mark.redis]
APP, PREFIX = "reengage_redis", "/redis"
OPTED, ERASED = 1234, 1357


@pytest.fixture(scope="module")
def redis_app(
    app_url: str, app_overrides: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Settings, str]]:
    from ray import serve

    from serving.app import build_app
    from serving.build import run_build
    from serving.server import wait_ready

    root = tmp_path_factory.mktemp("privacy_serve_redis")
    redis = RedisServer(root)
    redis.start()
    # the session's email-writer checkpoint: this app trains only its scoring models
    ws = make_workspace(
        root,
        customers=2000,
        state="redis",
        redis_url=redis.url,
        llm={"model_path": app_overrides["llm"]["model_path"]},
    )
    settings = load_settings(ws)
    run_build(
        settings, steps=("generate", "apply", "materialize", "train_churn", "train_engagement")
    )
    overrides = {
        **ws,
        "models": {**ws["models"], "batch_wait_timeout_s": 0.002},
        "server": app_overrides["server"],
    }
    serve.run(build_app(overrides), name=APP, route_prefix=PREFIX, blocking=False)
    url = app_url + PREFIX
    wait_ready(url, timeout_s=300)
    assert settings.auth.admin_token_file is not None
    yield url, settings, settings.auth.admin_token_file.read_text().strip()
    serve.delete(APP)
    redis.stop()


def test_consent_and_erasure_with_redis_state_over_http(
    redis_app: tuple[str, Settings, str],
) -> None:
    from typer.testing import CliRunner

    from serving.bandit.state import open_store
    from serving.build import run_build
    from serving.cli import app
    from serving.privacy.pseudonym import pseudonym_hex, pseudonym_key, pseudonyms
    from serving.shared_state import open_shared_state

    url, settings, token = redis_app
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, timeout=120) as client:
        assert (
            client.post(
                "/v1/consent", json={"customer_id": OPTED, "opted_out": True}, headers=auth
            ).status_code
            == 200
        )
        assert until(
            lambda: all(r == {"opted_out"} for r in _by_replica(client, OPTED, 4).values()), 1.0
        )
        seen = _by_replica(client, OPTED)
        assert len(seen) == 2 and all(r == {"opted_out"} for r in seen.values()), seen
        body = client.post("/v1/reengage", json={"customer_id": OPTED}).json()
        assert (
            body["reason"] == "opted_out"
            and body["body"] is None
            and body["llm"]["written"] is False
        )
        forced = client.post("/v1/reengage", json={"customer_id": OPTED, "action": "free_shipping"})
        assert forced.status_code == 409 and forced.json()["error"]["type"] == "opted_out"
        assert (
            client.post(
                "/v1/consent", json={"customer_id": OPTED, "opted_out": False}, headers=auth
            ).status_code
            == 200
        )
        assert until(
            lambda: all("opted_out" not in r for r in _by_replica(client, OPTED, 4).values()), 2.0
        )

        for _ in range(3):
            client.post("/v1/score", json={"customer_ids": [ERASED, ERASED + 1]})
        assert client.post(
            "/v1/reengage", json={"customer_id": ERASED, "action": "discount_offer"}
        ).json()["body"]
        out = CliRunner().invoke(
            app,
            ["privacy", "erase", str(ERASED), "--url", url, "--json"],
            env={"REENGAGE_TOKEN": token},
        )
        assert out.exit_code == 0, out.output
        assert all(
            not f
            for r in range(6)
            for f in client.post("/v1/score", json={"customer_ids": [ERASED]}).json()["found"]
        )
    assert not any(_online(settings, ERASED).values())
    key = pseudonym_key(settings.privacy)
    store = open_store(settings.bandit)
    try:
        batches = store.read_log()[0]
        assert batches and not any(
            np.isin([pseudonyms(np.array([ERASED]), key)[0], ERASED], b.customer_ids).any()
            for b in batches
        )
        assert not store.r.exists(f"{store.prefix}:cap:{ERASED}")  # type: ignore[attr-defined]
    finally:
        store.close()
    shared = open_shared_state(settings)
    try:
        assert shared.get("consent", str(ERASED)) is None and pseudonym_hex(
            ERASED, key
        ) in shared.items("suppression")
    finally:
        shared.close()
    run_build(settings, steps=("materialize",), force=True)
    assert not any(_online(settings, ERASED).values()) and all(
        _online(settings, ERASED + 1).values()
    )
