"""A real two-node Ray cluster on this machine (issue 12, item 6).

The application runs with nothing node-local but the installed package: features and
bandit state in one Redis (``state: redis``), the model repository and the Feast
registry shipped in the app's runtime_env working_dir (``server.artifacts:
working_dir``). The operator's workspace is renamed away before the deploy, so a
replica reading it could not start. One Ingress replica per node (1 CPU per node, 0.6 a
replica); rewards posted through HAProxy reach either replica, and every replica's next
decisions use the statistics that include all of them (the decision log records the
state version each decision was made with).

The cluster lives in a driver process of its own (``cluster_driver.py``): this pytest
process may already be connected to the e2e session's Ray.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from serving.server import HAPROXY_ENV
from serving.settings import load_settings
from tests.conftest import RedisServer, free_port
from tests.e2e.conftest import make_workspace
from tests.e2e.serve_driver import stop_driver

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.slow]
CUSTOMERS = 600


def _read_json(proc: subprocess.Popen[str], timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            line = proc.stdout.readline()
            if line.startswith("{"):
                return json.loads(line)
            if not line and proc.poll() is not None:
                break
        elif proc.poll() is not None:
            break
    raise AssertionError(
        f"the cluster driver gave no answer (exit {proc.poll()}); see its stderr above"
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from serving.build import run_build

    root = tmp_path_factory.mktemp("cluster")
    redis = RedisServer(root)
    redis.start()
    checkout = root / "operator_checkout"  # model repo, Feast repo: renamed away before the deploy
    overrides = make_workspace(
        checkout,
        customers=CUSTOMERS,
        state="redis",
        redis_url=redis.url,
        data_dir=str(root / "operator_data"),
        llm={"enabled": False},
    )
    run_build(
        load_settings(overrides),
        steps=("generate", "apply", "materialize", "train_churn", "train_engagement"),
    )
    port, grpc_port = free_port(), free_port()
    ray_tmp = Path(
        tempfile.mkdtemp(prefix="rc", dir="/tmp")
    )  # Ray's socket paths must stay under 107 bytes
    args = {
        **overrides,
        "server": {
            "artifacts": "working_dir",
            "host": "127.0.0.1",
            "port": port,
            "grpc_port": grpc_port,
            "ingress_replicas": 2,
            "num_cpus": 0.6,
            "haproxy": True,
        },
    }
    env = {
        **os.environ,
        **HAPROXY_ENV,
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
    }
    config = {
        "args": args,
        "http_port": port,
        "rename": [str(checkout), str(root / "moved_away")],
        "temp_dirs": [str(ray_tmp / "h"), str(ray_tmp / "w")],
    }
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.cluster_driver", json.dumps(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        first = _read_json(proc, timeout_s=600)
        yield {
            "url": f"http://127.0.0.1:{port}",
            "grpc": f"127.0.0.1:{grpc_port}",
            "proc": proc,
            "settings": load_settings(args),
            "checkout": checkout,
            "redis": redis,
            "deploy_s": time.monotonic() - started,
            **first,
        }
    finally:
        stop_driver(proc, timeout_s=90)
        redis.stop()
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _replica(r: httpx.Response) -> str:
    return r.headers["x-reengage-replica"]


def _score_on_every_replica(url: str, replicas: set[str], first_id: int) -> dict[str, list[str]]:
    """Score until every replica answered some decisions; decision ids by replica."""
    seen: dict[str, list[str]] = {}
    ids = first_id
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(200):
            r = client.post("/v1/score", json={"customer_ids": list(range(ids, ids + 4))})
            ids += 4
            assert r.status_code == 200, r.text
            seen.setdefault(_replica(r), []).extend(d for d in r.json()["decision_id"] if d)
            if set(seen) >= replicas and all(len(v) >= 20 for v in seen.values()):
                return seen
    raise AssertionError(
        f"HAProxy sent 200 requests to {sorted(seen)} only, not to every replica {sorted(replicas)}"
    )


def test_replicas_run_on_both_nodes_from_the_shipped_artifacts(cluster: dict[str, Any]) -> None:
    assert len(cluster["nodes"]) == 2
    ingress = [r for r in cluster["replicas"] if r["deployment"] == "Ingress"]
    assert len(ingress) == 2 and {r["node_id"] for r in ingress} == set(cluster["nodes"])
    assert not cluster["checkout"].exists()  # the operator's files were gone before the deploy
    ready = httpx.get(cluster["url"] + "/v2/health/ready", timeout=10)
    assert ready.status_code == 200
    # gRPC on the cluster too (grpc_options, as in deploy/serve.yaml)
    import tritonclient.grpc as grpcclient

    grpc = grpcclient.InferenceServerClient(cluster["grpc"])
    assert grpc.is_server_ready() and grpc.is_model_ready("churn")
    print(f"\ntwo-node deploy (build excluded) ready in {cluster['deploy_s']:.0f} s")


def test_rewards_through_any_replica_are_learned_by_every_replica(cluster: dict[str, Any]) -> None:
    from serving.bandit.policies import Layout
    from serving.bandit.router import state_fingerprint
    from serving.bandit.state import RedisStore

    url, settings = cluster["url"], cluster["settings"]
    replicas = {r["replica_id"] for r in cluster["replicas"] if r["deployment"] == "Ingress"}
    token = settings.auth.admin_token_file.read_text().strip()
    decided = _score_on_every_replica(url, replicas, first_id=1)
    made_on = {d: rep for rep, ds in decided.items() for d in ds}
    rewarded_on: dict[str, str] = {}
    learned = 0
    with httpx.Client(
        base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        for decision in made_on:
            r = client.post("/v1/feedback", json={"decision_id": decision, "reward": 1.0})
            assert r.status_code == 200, (
                r.text
            )  # embedded state: 404 decision_not_found on the other node
            rewarded_on[decision] = _replica(r)
            learned += r.json()["policy_updated"]  # holdout and capped rows are logged, not learned
    crossed = [d for d in made_on if made_on[d] != rewarded_on[d]]
    assert crossed, "no reward reached the other node's replica"
    store = RedisStore(settings.bandit.redis_url, settings.bandit.name)
    key = f":state:{state_fingerprint(settings.bandit)}"
    layout = Layout(len(settings.bandit.arms), len(settings.bandit.context_features))
    version, stats = store.read_state(key, (layout.n_arms, layout.width))
    assert learned >= len(made_on) // 2  # 5 % holdout
    assert (
        int(round(stats[:, 0].sum())) == learned
    )  # every reward counted once, whichever replica took it
    time.sleep(
        settings.bandit.sync_interval_s + 1.0
    )  # each replica's committer picks up the shared state
    after = _score_on_every_replica(url, replicas, first_id=CUSTOMERS // 2)
    records = {rec.batch_id: rec for rec in store.read_log()[0]}
    for replica, decisions in after.items():
        used = {
            int(records[d.rpartition("-")[0]].policy_version.rpartition(":")[2]) for d in decisions
        }
        assert min(used) >= version, (
            f"replica {replica} decided with state version {used}, not >= {version}"
        )
    print(
        f"\n{len(made_on)} rewards ({len(crossed)} through the other node's replica); "
        f"state v{version} used by every replica: {sorted(after)}; "
        f"rewards per arm {np.round(stats[:, 0]).astype(int).tolist()}"
    )


def test_a_revoked_token_is_refused_on_both_nodes_within_a_second(cluster: dict[str, Any]) -> None:
    """server.artifacts=working_dir: tokens are not shipped with the app but read from the
    shared state in Redis, so one created after the deploy works on both nodes' replicas,
    and once revoked neither accepts it 1 s later."""
    from serving.security import TokenBook
    from serving.shared_state import open_shared_state

    url, settings = cluster["url"], cluster["settings"]
    replicas = {r["replica_id"] for r in cluster["replicas"] if r["deployment"] == "Ingress"}
    book = TokenBook(open_shared_state(settings))
    headers = {
        "Authorization": "Bearer " + book.create("after-deploy", ["admin"]),
        "Connection": "close",
    }

    def statuses() -> dict[str, int]:
        seen: dict[str, int] = {}
        with httpx.Client(base_url=url, timeout=30) as client:
            for _ in range(60):  # fresh connections: HAProxy spreads them over both replicas
                r = client.post("/v2/repository/index", json={}, headers=headers)
                seen[_replica(r)] = r.status_code
                if set(seen) >= replicas:
                    break
        return seen

    time.sleep(1.0)
    before = statuses()
    assert set(before) == replicas and set(before.values()) == {200}, before
    assert book.revoke("after-deploy")
    time.sleep(1.0)
    after = statuses()
    assert set(after) == replicas and set(after.values()) == {401}, after
    book.state.close()
