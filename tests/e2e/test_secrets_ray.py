"""No secret leaves the real application: Ray Serve, HAProxy, its replicas' logs.

The application runs on a Ray head of its own (tests/e2e/serve_driver.py) with a distinct
canary in every secret-bearing setting: the password of the redis-server holding the
features and the bandit and shared state, an admin token configured by its hash, the
remote LLM's URL credentials and API key (a small HTTP server here plays that LLM and
fails every completion), the pseudonym key. Error paths are driven over HTTP (bad
tokens, the writer failing, Redis hung, Redis down, Redis back); then every answer (status,
headers, body), every file under the data dir and every file of the app's Ray session
(its logs: controller, proxies, replicas, HAProxy, GCS) is searched for each canary.
The unit-level twin on TestClient is tests/serving/test_secrets.py.
"""

from __future__ import annotations

import base64
import json
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_py

from serving.security import hash_token
from serving.settings import Settings, load_settings
from tests.e2e.conftest import make_workspace, until
from tests.e2e.serve_driver import running
from tests.serving.test_secrets import PasswordRedis

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.slow]

PASSWORD = "pw-RayRedisCanary4Qm8"  # the Redis password: in the features' and the state's URL
TOKEN = "rng_ops-RayTokCanary93Lx"  # a valid admin token; only its hash is configured
BAD_TOKEN = "rng_bad-RayBadCanary27Wd"  # a token nobody issued, sent by callers
LLM_KEY = "sk-RayLlmKeyCanary61Pz"  # the remote LLM's API key
LLM_PASS = "RayLlmUrlCanary38Tv"  # the password in the remote LLM's URL
PSEUDO_KEY = "9c3e5a71d2b84f06ae19c7d5b3f20e8a"  # the pseudonym key (32 hex digits)
CANARIES = (PASSWORD, TOKEN, BAD_TOKEN, LLM_KEY, LLM_PASS, PSEUDO_KEY)
CUSTOMERS = 600
PROBE = "secrets-ray-probe-5Jq2"  # a request id: its request log line shows the logs searched


class FailingLLM(BaseHTTPRequestHandler):
    """An OpenAI-compatible server that lists the model and fails every completion with
    500; it records the Authorization header of every request."""

    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.seen.append(self.headers.get("Authorization", ""))
        body = {
            "object": "list",
            "data": [{"id": "email_writer", "object": "model", "created": 0, "owned_by": "test"}],
        }
        self._answer(200, body)

    def do_POST(self) -> None:  # noqa: N802
        self.seen.append(self.headers.get("Authorization", ""))
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._answer(500, {"error": {"message": "the test's LLM fails", "type": "server_error"}})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def llm_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FailingLLM)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def secret_app(
    tmp_path_factory: pytest.TempPathFactory, llm_server: ThreadingHTTPServer
) -> Iterator[tuple[dict[str, Any], PasswordRedis, Settings]]:
    from serving.build import run_build

    root = tmp_path_factory.mktemp("secrets_ray")
    redis = PasswordRedis(root, PASSWORD)
    redis.start()
    llm_port = llm_server.server_address[1]
    overrides = make_workspace(
        root,
        customers=CUSTOMERS,
        state="redis",
        redis_url=f"redis://:{PASSWORD}@127.0.0.1:{redis.port}/0",
        features={"timeout_s": 0.5},
        bandit={"timeout_s": 0.5},
        llm={
            "backend": "remote",
            "remote_url": f"http://mailer:{LLM_PASS}@127.0.0.1:{llm_port}/v1",
            "remote_api_key": LLM_KEY,
            "timeout_s": 5.0,
        },
        privacy={"pseudonym_key": PSEUDO_KEY},
        auth={
            "tokens": [
                {"name": "ops", "sha256": hash_token(TOKEN), "roles": ["admin", "feedback"]}
            ],
            "bootstrap_admin": False,
        },
        server={"ingress_replicas": 1, "num_cpus": 0.25, "haproxy": True},
    )
    settings = load_settings(overrides)
    run_build(
        settings, steps=("generate", "apply", "materialize", "train_churn", "train_engagement")
    )
    try:
        with running(overrides) as app:
            yield app, redis, settings
    finally:
        redis.stop()


class Answers:
    """Every answer of the run, as text: status, headers and body."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=60)
        self.texts: list[str] = []

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        r = self.client.request(method, path, **kw)
        self.texts.append(f"{r.status_code} {r.headers.multi_items()} {r.text}")
        return r


def test_no_canary_in_any_answer_data_file_or_ray_log(
    secret_app: tuple[dict[str, Any], PasswordRedis, Settings],
    llm_server: ThreadingHTTPServer,
) -> None:
    app, redis, settings = secret_app
    # the canaries are in use: the store refuses a client without the password, the token's
    # hash opens the admin API, the LLM got the key (or the URL's credentials)
    with pytest.raises(redis_py.AuthenticationError):
        redis_py.Redis(port=redis.port, socket_timeout=2).get("x")
    http = Answers(app["url"])
    score = {"json": {"customer_ids": [1, 2, 3]}}
    assert (
        http.call("POST", "/v1/score", headers={"X-Request-ID": PROBE}, **score).status_code == 200
    )
    ok = {"Authorization": f"Bearer {TOKEN}"}
    assert http.call("GET", "/v1/admin/rollout/churn", headers=ok).status_code not in (401, 403)

    for bad in (BAD_TOKEN, PASSWORD, LLM_KEY, f"{BAD_TOKEN} extra"):
        wrong = {"Authorization": f"Bearer {bad}"}
        r = http.call("POST", "/v1/admin/repository/churn/versions/1/unload", headers=wrong)
        assert r.status_code == 401, r.text
        r = http.call("POST", "/v1/feedback", headers=wrong, json={"decision_id": "x" * 32})
        assert r.status_code == 401, r.text
    basic = {"Authorization": "Basic " + base64.b64encode(f"ops:{TOKEN}".encode()).decode()}
    assert http.call("GET", "/v1/admin/rollout/churn", headers=basic).status_code == 401

    # the writer fails: a 503 naming the remote LLM
    r = http.call("POST", "/v1/completions", json={"model": "email_writer", "prompt": "hi"})
    assert r.status_code == 503 and "remote LLM" in r.text, r.text
    assert http.call("POST", "/v1/reengage", json={"customer_id": 1}).status_code in (200, 503)
    sent = set(FailingLLM.seen)
    url_auth = "Basic " + base64.b64encode(f"mailer:{LLM_PASS}".encode()).decode()
    assert sent & {f"Bearer {LLM_KEY}", url_auth}, sent

    _redis_outages(http, redis, settings, score)

    answers = "\n".join(http.texts)
    for canary in CANARIES:
        assert canary not in answers, f"{canary!r} in an answer"
    files = (
        _files(settings.data_dir) + _files(Path(app["session_dir"])) + _files(Path(app["head_log"]))
    )
    ray_logs = [p for p in files if "logs" in p.parts and app["session_dir"] in str(p)]
    assert any("replica" in p.name for p in ray_logs), "the app's replica logs are searched"
    assert any(p.name == "audit.jsonl" for p in files)
    probe = PROBE.encode()  # the request log lines of this run are in the logs searched
    assert any(probe in p.read_bytes() for p in ray_logs), "the app's request log not found"
    for path in files:
        data = path.read_bytes()
        for canary in CANARIES:
            assert canary.encode() not in data, f"{canary!r} in {path}"


def _redis_outages(
    http: Answers, redis: PasswordRedis, settings: Settings, score: dict[str, Any]
) -> None:
    """Redis hung, then down, then back (restarted empty and materialized again)."""
    from serving.build import run_build

    assert redis.proc is not None
    redis.proc.send_signal(signal.SIGSTOP)
    try:
        assert http.call("POST", "/v1/score", **score).status_code in (503, 504)
        assert http.call("POST", "/v1/reengage", json={"customer_id": 1}).status_code in (503, 504)
        assert until(lambda: http.call("GET", "/v2/health/ready").status_code == 503, 10)
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    redis.stop()
    down = [http.call("POST", "/v1/score", **score) for _ in range(3)]
    assert all(r.status_code == 503 for r in down), [r.text for r in down]
    named = down[-1].json()["error"]["message"]
    assert f"127.0.0.1:{redis.port}" in named and "feature store" in named, named
    http.call("POST", "/v1/reengage", json={"customer_id": 1})
    ok = {"Authorization": f"Bearer {TOKEN}"}
    http.call("POST", "/v1/feedback", headers=ok, json={"decision_id": "x" * 32, "reward": 1.0})
    redis.start()  # back, empty: materialized again, as an operator would
    run_build(settings, steps=("materialize",), force=True)
    assert until(lambda: http.call("POST", "/v1/score", **score).status_code == 200, 60)


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
