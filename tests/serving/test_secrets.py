"""No secret leaves: with a password in the Redis URL and distinct bearer tokens, every
error path (store down, hung, empty, a wrong password, bad tokens) answers and logs
without any of them.

Real Feast repository materialized into a real redis-server started with
``--requirepass``, real ONNX models, the bandit's state in the same Redis; the HTTP layer
on FastAPI's TestClient (no Ray) so each outage can be staged precisely.
"""

from __future__ import annotations

import io
import logging
import signal
import sys
from pathlib import Path

import pytest
import redis as redis_py
from fastapi.testclient import TestClient

from feature_store.errors import OnlineStoreUnavailable
from feature_store.redact import install_log_redaction, redact, redact_mapping
from serving.security import hash_token
from serving.settings import load_settings
from tests.conftest import RedisServer
from tests.e2e.conftest import make_workspace

pytestmark = pytest.mark.redis

PASSWORD = "pw-Kx9LeakCanary31"  # the Redis password: in every URL the settings hold
TOKEN = "rng_admin-TokCanary77Qz4Vb"  # a valid admin token (only its hash is configured)
BAD_TOKEN = "rng_bad-WrongCanary55Hn2"  # a token nobody issued, sent by a caller
SECRETS = (PASSWORD, TOKEN, BAD_TOKEN)


def test_redact_masks_url_credentials_dsn_passwords_and_bearer_tokens() -> None:
    assert redact("redis://:pw@h:6379/0") == "redis://***@h:6379/0"
    assert (
        redact("rediss://user:pw@h:6380/1 and http://u:p@x/y")
        == "rediss://***@h:6380/1 and http://***@x/y"
    )
    assert (
        redact("redis at h:6379,db=0,password=pw,ssl=true")
        == "redis at h:6379,db=0,password=***,ssl=true"
    )
    assert redact("Authorization: Bearer abc.def") == "Authorization: Bearer ***"
    assert (
        redact("redis://h:6379/0 max_tokens=5") == "redis://h:6379/0 max_tokens=5"
    )  # nothing to hide
    assert redact(redact("redis://:pw@h/0")) == "redis://***@h/0"
    dump = redact_mapping(
        {"redis_url": "redis://:pw@h/0", "remote_api_key": "sk-1", "tokens": [{"sha256": "x"}]}
    )
    assert dump == {"redis_url": "redis://***@h/0", "remote_api_key": "***", "tokens": "***"}
    err = OnlineStoreUnavailable(
        "feature store (redis at h:6379,db=0,password=pw)", "redis://:pw@h down"
    )
    assert "pw" not in str(err) and "pw" not in repr(err.args)


def test_settings_dump_and_log_records_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(
        {
            "state": "redis",
            "redis_url": f"redis://:{PASSWORD}@127.0.0.1:1/0",
            "llm": {"remote_api_key": PASSWORD},
        }
    )
    assert PASSWORD not in str(settings.redacted_dump())
    install_log_redaction()
    with caplog.at_level(logging.INFO, logger="reengage.test"):
        logging.getLogger("reengage.test").info("connecting to %s", settings.features.redis_url)
        try:
            raise ConnectionError(f"cannot reach {settings.bandit.redis_url}")
        except ConnectionError:
            logging.getLogger("reengage.test").exception("failed")
    handler_out = io.StringIO()
    handler = logging.StreamHandler(handler_out)
    for record in caplog.records:
        handler.emit(record)
    assert "redis://***@127.0.0.1:1/0" in handler_out.getvalue()
    assert PASSWORD not in handler_out.getvalue()


@pytest.fixture(scope="module")
def secret_app(tmp_path_factory: pytest.TempPathFactory):
    from serving import request_log
    from serving.build import run_build
    from serving.components.bandit import BanditService
    from serving.components.features import FeatureLookup, model_feature_services
    from serving.components.models import ModelService
    from serving.dataplane import DataPlane
    from serving.http import create_app

    root = tmp_path_factory.mktemp("secret_ws")
    server = PasswordRedis(root, PASSWORD)
    server.start()
    url = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"
    overrides = make_workspace(
        root,
        customers=400,
        state="redis",
        redis_url=url,
        features={"timeout_s": 0.2},
        bandit={"timeout_s": 0.2},
        auth={
            "tokens": [{"name": "ops", "sha256": hash_token(TOKEN), "roles": ["admin"]}],
            "reload_interval_s": 0.05,
            "bootstrap_admin": False,
        },
    )
    settings = load_settings(overrides)
    run_build(
        settings, steps=("generate", "apply", "materialize", "train_churn", "train_engagement")
    )
    install_log_redaction()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log_file = (
        settings.data_dir / "reengage.log"
    )  # every log record of the run, as a replica's log holds them
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logging.getLogger().addHandler(handler)
    old_level = logging.getLogger().level
    logging.getLogger().setLevel(logging.DEBUG)
    request_stream = (settings.data_dir / "requests.jsonl").open("a")
    request_log.configure(True, stream=request_stream)
    features = FeatureLookup(settings.features, model_feature_services(settings))
    models = {n: ModelService(n, settings.models) for n in ("churn", "engagement")}
    bandit = BanditService(settings.bandit)
    plane = DataPlane(settings, features, models, bandit)
    try:
        with TestClient(create_app(plane), raise_server_exceptions=False) as client:
            yield client, server, settings
    finally:
        request_log.configure(
            True, stream=sys.__stderr__
        )  # as other tests expect it, not the closed file
        request_stream.close()
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(old_level)
        handler.close()
        bandit.router.close()
        server.stop()


class PasswordRedis(RedisServer):
    """The session's redis-server launcher, with ``--requirepass``."""

    def __init__(self, workdir: Path, password: str) -> None:
        super().__init__(workdir)
        self.password = password

    def start(self) -> None:
        import shutil
        import subprocess
        import time

        self.proc = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--requirepass",
                self.password,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis_py.Redis(port=self.port, password=self.password, socket_timeout=0.2).ping()
                return
            except redis_py.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def client(self) -> redis_py.Redis:
        return redis_py.Redis(port=self.port, password=self.password, socket_timeout=2)


def test_no_secret_in_any_answer_or_log_file(secret_app) -> None:
    client, server, settings = secret_app
    admin = {"Authorization": f"Bearer {TOKEN}"}
    answers: list[str] = []

    def call(method: str, path: str, **kw: object) -> int:
        r = client.request(method, path, **kw)
        answers.append(f"{r.status_code} {dict(r.headers)} {r.text}")
        return r.status_code

    body = {"json": {"customer_ids": [1, 2, 3]}}
    assert call("POST", "/v1/score", **body) == 200
    assert call("POST", "/v1/reengage", json={"customer_id": 1}) in (200, 503)
    # bad tokens: unknown, malformed, the Redis password itself as a token
    for bad in (BAD_TOKEN, PASSWORD, f"{BAD_TOKEN} extra"):
        assert (
            call(
                "POST",
                "/v1/admin/repository/churn/versions/1/unload",
                headers={"Authorization": f"Bearer {bad}"},
            )
            == 401
        )
    assert call("GET", "/v1/admin/rollout/churn", headers=admin) in (200, 404)

    server.proc.send_signal(signal.SIGSTOP)  # hung: accepts, never answers
    try:
        assert call("POST", "/v1/score", **body) in (503, 504)
        assert call("POST", "/v1/reengage", json={"customer_id": 1}) in (503, 504)
        assert call("GET", "/v2/health/ready") == 503
    finally:
        server.proc.send_signal(signal.SIGCONT)

    server.client().flushall()  # empty: nothing materialized
    call("POST", "/v1/score", **body)
    call("GET", "/v2/health/ready")

    server.client().config_set(
        "requirepass", "another-password"
    )  # the configured password is now wrong
    assert call("POST", "/v1/score", **body) == 503
    assert call("POST", "/v1/reengage", json={"customer_id": 1}) == 503
    redis_py.Redis(port=server.port, password="another-password").config_set(
        "requirepass", PASSWORD
    )

    server.stop()  # down
    assert call("POST", "/v1/score", **body) == 503
    assert call("POST", "/v1/reengage", json={"customer_id": 1}) == 503
    assert (
        call("POST", "/v1/feedback", headers=admin, json={"decision_id": "x" * 32, "reward": 1.0})
        >= 400
    )
    call("GET", "/v2/health/ready")
    down = [a for a in answers if a.startswith("503")]
    assert any("127.0.0.1:" in a for a in down), "the 503s name the store's address"
    server.start()

    for secret in SECRETS:
        leaked = [a for a in answers if secret in a]
        assert not leaked, f"{secret!r} in an answer: {leaked[0][:300]}"
    files = [
        p
        for p in settings.data_dir.rglob("*")
        if p.is_file() and "auth" not in p.relative_to(settings.data_dir).parts
    ]
    assert any(p.name == "audit.jsonl" for p in files) and any(
        p.name == "reengage.log" for p in files
    )
    assert (settings.data_dir / "reengage.log").stat().st_size > 0
    for path in files:
        data = path.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in data, f"{secret!r} in {path}"
