"""Auth on the real application, over HTTP (HAProxy, both replicas) and gRPC (Serve's gRPC
proxy, tritonclient): every route group 401 / 403 / 200, an unauthenticated unload
refused, refusals and admin actions in the audit log, no token in any Ray log, and an
unloaded model answering 503 (naming it) until it is loaded again.

The session's app has the defaults (admin and feedback need a token); a second app on
the same cluster (``/closed``) needs a token for every group.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from serving.settings import Settings

from tests.e2e.conftest import until

pytestmark = pytest.mark.e2e

CLOSED_APP, PREFIX = "reengage_closed", "/closed"
ALL_TOKEN = {g: "token" for g in ("health", "metadata", "inference", "feedback", "admin")}
TOKENS = {
    "reader": ("rng_e2e-reader-" + "r" * 32, ["health", "metadata", "inference"]),
    "crm": ("rng_e2e-crm-" + "c" * 32, ["feedback"]),
}
WRONG = {
    "health": "crm",
    "metadata": "crm",
    "inference": "crm",
    "feedback": "reader",
    "admin": "reader",
}
RIGHT = {
    "health": "reader",
    "metadata": "reader",
    "inference": "reader",
    "feedback": "crm",
    "admin": "admin",
}


@pytest.fixture(scope="module")
def tokens(app_url: str, settings: Settings, admin_token: str) -> dict[str, str]:
    """Two role-limited tokens, added to the running app's shared state (replicas watch it)."""
    from serving.security import TokenBook, hash_token
    from serving.shared_state import open_shared_state

    book = TokenBook(open_shared_state(settings))
    for name, (token, roles) in TOKENS.items():
        book.put(name, hash_token(token), roles)
    book.state.close()
    out = {name: token for name, (token, _) in TOKENS.items()}
    out["admin"] = admin_token
    return out


def _h(tokens: dict[str, str], who: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[who]}"} if who else {}


@pytest.fixture(scope="module")
def closed_url(app_url: str, app_overrides: dict[str, Any], admin_token: str) -> Iterator[str]:
    from ray import serve

    from serving.app import build_app

    overrides = {
        **app_overrides,
        "llm": {**app_overrides.get("llm", {}), "enabled": False},
        "server": {**app_overrides["server"], "ingress_replicas": 1},
        "auth": {"groups": ALL_TOKEN},
    }
    serve.run(build_app(overrides), name=CLOSED_APP, route_prefix=PREFIX, blocking=False)
    url = app_url + PREFIX

    def ready() -> bool:
        headers = {"Authorization": f"Bearer {admin_token}"}
        return httpx.get(f"{url}/v2/health/ready", timeout=5, headers=headers).status_code == 200

    assert until(ready, 300), "the closed app did not become ready"
    yield url
    serve.delete(CLOSED_APP)
    # one application again: gRPC calls without "application" metadata route to it once the
    # proxy has heard (other modules' tritonclient calls send none)
    grpc_client = grpcclient.InferenceServerClient(
        f"127.0.0.1:{app_overrides['server']['grpc_port']}"
    )

    def single_app() -> bool:
        try:
            return bool(grpc_client.is_server_live())
        except InferenceServerException:
            return False

    until(single_app, 30)


# (group, method, path, body) on the closed app: one route of each kind
def _requests(n_features: int) -> list[tuple[str, str, str, Any]]:
    infer = {
        "inputs": [
            {
                "name": "features",
                "datatype": "FP32",
                "shape": [1, n_features],
                "data": [0.0] * n_features,
            }
        ]
    }
    return [
        ("health", "GET", "/v2/health/live", None),
        ("health", "GET", "/v2/models/churn/ready", None),
        ("metadata", "GET", "/v2", None),
        ("metadata", "GET", "/v2/models/churn", None),
        ("inference", "POST", "/v1/score", {"customer_ids": [1, 2]}),
        ("inference", "POST", "/v2/models/churn/infer", infer),
        ("admin", "POST", "/v2/repository/index", {}),
    ]


def test_http_every_group_401_403_200_when_closed(
    closed_url: str, tokens: dict[str, str], admin_headers: dict[str, str]
) -> None:
    n = len(
        httpx.get(f"{closed_url}/v2/models/churn", headers=admin_headers, timeout=30).json()[
            "parameters"
        ]["features"]
    )
    with httpx.Client(base_url=closed_url, timeout=60) as client:
        for group, method, path, body in _requests(n):
            kwargs = {"json": body} if body is not None else {}
            missing = client.request(method, path, **kwargs)
            assert missing.status_code == 401, (path, missing.text)
            assert missing.json()["error_type" if path.startswith("/v2") else "error"] is not None
            assert until(
                lambda: (
                    client.request(
                        method,
                        path,
                        headers=_h(tokens, WRONG[group]),  # shared state reload
                        **kwargs,
                    ).status_code
                    == 403
                ),
                10,
            ), path
            right = client.request(method, path, headers=_h(tokens, RIGHT[group]), **kwargs)
            assert right.status_code == 200, (path, right.text)
        decision = client.post(
            "/v1/score", json={"customer_ids": [7]}, headers=_h(tokens, "reader")
        ).json()
        feedback = {"decision_id": decision["decision_id"][0], "reward": 1.0}
        refused = client.post("/v1/feedback", json=feedback)
        assert refused.status_code == 401 and refused.json()["error"]["type"] == "unauthenticated"
        assert (
            client.post("/v1/feedback", json=feedback, headers=_h(tokens, "reader")).status_code
            == 403
        )
        assert (
            client.post("/v1/feedback", json=feedback, headers=_h(tokens, "crm")).status_code == 200
        )


def _grpc_calls(client: grpcclient.InferenceServerClient, n: int) -> dict[str, Any]:
    x = np.zeros((1, n), dtype=np.float32)
    inp = grpcclient.InferInput("features", [1, n], "FP32")
    inp.set_data_from_numpy(x)
    return {
        "health": lambda h: client.is_model_ready("churn", headers=h),
        "metadata": lambda h: client.get_model_metadata("churn", headers=h),
        "inference": lambda h: client.infer("churn", [inp], headers=h),
        "admin": lambda h: client.get_model_repository_index(headers=h),
    }


def test_grpc_every_group_401_403_200_when_closed(
    closed_url: str,
    tokens: dict[str, str],
    app_overrides: dict[str, Any],
    admin_headers: dict[str, str],
) -> None:
    n = len(
        httpx.get(f"{closed_url}/v2/models/churn", headers=admin_headers, timeout=30).json()[
            "parameters"
        ]["features"]
    )
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{app_overrides['server']['grpc_port']}")
    app = {"application": CLOSED_APP}
    for group, call in _grpc_calls(client, n).items():
        with pytest.raises(InferenceServerException) as missing:
            call(app)
        assert "UNAUTHENTICATED" in str(missing.value.status()), group
        with pytest.raises(InferenceServerException) as wrong:
            call({**app, "authorization": f"Bearer {tokens[WRONG[group]]}"})
        assert (
            "PERMISSION_DENIED" in str(wrong.value.status())
            and f"'{group}'" in wrong.value.message()
        )
        call({**app, "authorization": f"Bearer {tokens[RIGHT[group]]}"})  # no exception: OK


def test_grpc_defaults_refuse_an_unauthenticated_unload(
    app_url: str, app_overrides: dict[str, Any], tokens: dict[str, str], settings: Settings
) -> None:
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{app_overrides['server']['grpc_port']}")
    app = {"application": "reengage"}  # two applications share the gRPC port in this module
    assert client.is_server_live(headers=app) and client.get_model_metadata("churn", headers=app)
    with pytest.raises(InferenceServerException) as refused:
        client.unload_model("engagement", headers=app)
    assert "UNAUTHENTICATED" in str(refused.value.status())
    with pytest.raises(InferenceServerException) as wrong:
        client.unload_model(
            "engagement", headers={**app, "authorization": f"Bearer {tokens['crm']}"}
        )
    assert "PERMISSION_DENIED" in str(wrong.value.status())
    assert (
        httpx.get(f"{app_url}/v2/models/engagement/ready", timeout=30).status_code == 200
    )  # still loaded
    client.load_model("engagement", headers={**app, "authorization": f"Bearer {tokens['admin']}"})
    entries = [json.loads(x) for x in Path(settings.auth.audit_log).read_text().splitlines()]  # type: ignore[arg-type]
    tail = [(e["actor"], e["action"], e["result"]) for e in entries[-3:]]
    assert tail == [
        ("anonymous", "grpc RepositoryModelUnload", "denied"),
        ("crm", "grpc RepositoryModelUnload", "denied"),
        ("admin", "repository.load", "ok"),
    ]


def test_unauthenticated_unload_is_refused_and_an_unloaded_model_is_503(
    app_url: str, admin_headers: dict[str, str], settings: Settings
) -> None:
    triton = httpclient.InferenceServerClient(app_url.split("://", 1)[1])
    with pytest.raises(InferenceServerException) as refused:
        triton.unload_model("churn")  # tritonclient unchanged: the 401 reaches it as a clear error
    assert "authorization" in refused.value.message()
    with httpx.Client(base_url=app_url, timeout=60) as client:
        assert client.post("/v2/repository/models/churn/unload").status_code == 401
        assert (
            client.post("/v1/score", json={"customer_ids": [1]}).status_code == 200
        )  # still serving
        triton.unload_model("churn", headers=admin_headers)
        try:

            def all_503() -> bool:
                answers = [client.post("/v1/score", json={"customer_ids": [1]}) for _ in range(6)]
                return all(a.status_code == 503 for a in answers)

            assert until(all_503, 30), "every replica answers 503 once the model is unloaded"
            err = client.post("/v1/score", json={"customer_ids": [1]}).json()["error"]
            assert err["type"] == "model_not_ready" and "churn" in err["message"]
            unknown = client.post("/v2/models/nope/infer", json={"inputs": []})
            assert unknown.status_code == 404
        finally:
            triton.load_model("churn", headers=admin_headers)
        assert until(
            lambda: all(
                client.post("/v1/score", json={"customer_ids": [1]}).status_code == 200
                for _ in range(6)
            ),
            30,
        )
    entries = [json.loads(x) for x in Path(settings.auth.audit_log).read_text().splitlines()]  # type: ignore[arg-type]
    mine = [
        (e["actor"], e["action"], e["model"], e["result"])
        for e in entries
        if e.get("model") == "churn" or "models/churn" in e["action"]
    ]
    assert ("anonymous", "POST /v2/repository/models/churn/unload", None, "denied") in mine
    assert ("admin", "repository.unload", "churn", "ok") in mine and (
        "admin",
        "repository.load",
        "churn",
        "ok",
    ) in mine


def test_behind_haproxy_a_refusals_source_is_the_peer_never_the_callers_header(
    app_url: str, settings: Settings
) -> None:
    """Through Ray's HAProxy, as Ray starts with ``PROXY_HEADERS_ENV``: the replica sees
    HAProxy's loopback address (HAProxy adds no X-Forwarded-For), and a caller's own
    X-Forwarded-For names nothing (uvicorn would otherwise believe a loopback peer's)."""
    action = "POST /v2/repository/models/xff-probe/unload"
    time.sleep(1.5)  # an earlier test's refusals from this address: the rate refills
    with httpx.Client(base_url=app_url, timeout=30) as client:
        forged = {"X-Forwarded-For": "203.0.113.9", "Authorization": "Bearer nope"}
        assert (
            client.post("/v2/repository/models/xff-probe/unload", headers=forged).status_code == 401
        )
    log = Path(settings.auth.audit_log)  # type: ignore[arg-type]

    def entries() -> list[dict[str, Any]]:
        lines = log.read_text().splitlines() if log.exists() else []  # written off the loop
        return [json.loads(x) for x in lines if x.strip()]

    assert until(lambda: any(e["action"] == action for e in entries()), 30)
    assert [e["details"]["source"] for e in entries() if e["action"] == action] == ["127.0.0.1"]
    assert all(e.get("details", {}).get("source") != "203.0.113.9" for e in entries())


def test_a_revoked_token_is_refused_by_every_replica_within_a_second(
    app_url: str, settings: Settings, tokens: dict[str, str]
) -> None:
    """`reengage token` against the running app's shared state: a new token works on both
    ingress replicas (their answers name them), and once revoked, neither accepts it 1 s later."""
    import time

    from serving.security import TokenBook
    from serving.shared_state import open_shared_state

    book = TokenBook(open_shared_state(settings))
    headers = {"Authorization": "Bearer " + book.create("e2e-revoked", ["admin"])}
    with httpx.Client(base_url=app_url, timeout=30) as client:

        def statuses() -> dict[str, int]:
            out: dict[str, int] = {}
            for _ in range(40):  # HAProxy spreads connections: fresh ones reach both replicas
                r = client.post(
                    "/v2/repository/index", json={}, headers={**headers, "Connection": "close"}
                )
                out[r.headers["x-reengage-replica"]] = r.status_code
            return out

        assert until(lambda: set(statuses().values()) == {200}, 5)
        assert len(statuses()) == 2, "both ingress replicas answered"
        assert book.revoke("e2e-revoked")
        time.sleep(1.0)
        after = statuses()
        assert len(after) == 2 and set(after.values()) == {401}, after
    book.state.close()


def test_no_token_in_any_ray_log(tokens: dict[str, str], closed_url: str) -> None:
    import ray

    with httpx.Client(timeout=30) as client:  # a few more refusals and passes, with every token
        for token in tokens.values():
            client.post(
                f"{closed_url}/v2/repository/index", headers={"Authorization": f"Bearer {token}x"}
            )
            client.post(
                f"{closed_url}/v1/feedback",
                json={"decision_id": "x", "reward": 1},
                headers={"Authorization": f"Bearer {token}"},
            )
    logs = Path(ray._private.worker._global_node.get_logs_dir_path())
    secrets = [t.encode() for t in tokens.values()] + [
        t.split("_", 1)[1].encode() for t in tokens.values()
    ]
    files = [p for p in logs.rglob("*") if p.is_file()]
    assert files
    for path in files:
        data = path.read_bytes()
        assert not any(s in data for s in secrets), f"a token is in {path}"
