"""One real Serve application for the whole e2e session.

The session builds a small workspace (a copy of the Feast repository definitions, its
own data, model repository and checkpoint under a temp dir, so a developer's
``reengage build`` output is never touched), starts Ray and Serve with the HAProxy
ingress (the default ``reengage serve`` uses), and shares the URL with every test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from serving.settings import Settings, load_settings, project_root
from tests.conftest import free_port

E2E_CUSTOMERS = 20_000


def until(predicate, timeout_s: float = 60.0) -> bool:  # type: ignore[no-untyped-def]
    """Poll ``predicate`` every 0.25 s: True once it holds, False after ``timeout_s``."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return False


FEATURE_REPO_FILES = (
    "feature_store.yaml",
    "feature_store.redis.yaml",
    "definitions.py",
    ".feastignore",
)


def make_workspace(root: Path, customers: int = E2E_CUSTOMERS, **extra: Any) -> dict[str, Any]:
    """Settings overrides pointing every path into ``root``, with the Feast repo copied there."""
    repo = root / "feature_store"
    repo.mkdir(parents=True, exist_ok=True)
    for name in FEATURE_REPO_FILES:
        shutil.copy(project_root() / "feature_store" / name, repo / name)
    overrides: dict[str, Any] = {
        "data_dir": str(root / "data"),
        "data": {"customers": customers},
        "features": {"repo_path": str(repo)},
        "models": {"repo_path": str(root / "model_repo"), "poll_interval_s": 1.0},
        "llm": {
            "model_path": str(root / "model_repo" / "email_writer"),
            "train_steps": 60,
            "adapter_steps": 60,
        },
        "bandit": {"state_path": str(root / "data" / "bandit")},
    }
    for section, values in extra.items():  # nested sections merge, scalars replace
        if isinstance(values, dict):
            overrides.setdefault(section, {}).update(values)
        else:
            overrides[section] = values
    return overrides


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A built workspace: data generated, feast applied and materialized, models trained."""
    from serving.build import run_build

    overrides = make_workspace(tmp_path_factory.mktemp("workspace"))
    run_build(load_settings(overrides))
    return overrides


@pytest.fixture(scope="session")
def settings(workspace: dict[str, Any]) -> Settings:
    return load_settings(workspace)


@pytest.fixture(scope="session")
def app_overrides(workspace: dict[str, Any]) -> dict[str, Any]:
    port = free_port()
    # a 2 ms batch window (Triton's max_queue_delay): runtime calls run inline on the event
    # loop by default, so concurrent requests merge only when a call waits for company
    models = {**workspace["models"], "batch_wait_timeout_s": 0.002}
    return {
        **workspace,
        "models": models,
        "server": {
            "host": "127.0.0.1",
            "port": port,
            "grpc_port": free_port(),
            "ingress_replicas": 2,
            "num_cpus": 0.25,
            "haproxy": True,
        },
    }


@pytest.fixture(scope="session")
def admin_token(app_url: str, settings: Settings) -> str:
    """The admin token (every role) the app wrote to its data dir at start (secure by default)."""
    path = settings.auth.admin_token_file
    assert path is not None and path.exists(), "build_app writes the bootstrap admin token"
    return path.read_text().strip()


@pytest.fixture(scope="session")
def admin_headers(admin_token: str) -> dict[str, str]:
    """``Authorization: Bearer <admin token>``: feedback and admin routes need it by default."""
    return {"Authorization": f"Bearer {admin_token}"}


@pytest.fixture(scope="session")
def app_url(app_overrides: dict[str, Any]) -> Iterator[str]:
    import ray
    from ray import serve

    from serving.app import APP_NAME, build_app
    from serving.server import HAPROXY_ENV, PROXY_HEADERS_ENV, grpc_options, wait_ready

    # HAProxy's metrics and stats ports are fixed (9101, 8404) unless set: free ones let
    # two e2e sessions (or a developer's `reengage serve`) share the machine
    env = {
        **HAPROXY_ENV,
        **PROXY_HEADERS_ENV,
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
    }
    os.environ.update(env)  # read when Ray starts, as `reengage serve` does
    # address="local": a cluster of our own even when a `ray start` one runs on the machine
    ray.init(
        address="local",
        num_cpus=4,
        logging_level="WARNING",
        log_to_driver=False,
        runtime_env={"env_vars": env},
    )
    server = app_overrides["server"]
    serve.start(
        http_options={"host": server["host"], "port": server["port"]},
        grpc_options=grpc_options(load_settings(app_overrides)),
    )
    serve.run(build_app(app_overrides), name=APP_NAME, route_prefix="/", blocking=False)
    url = f"http://{server['host']}:{server['port']}"
    wait_ready(url, timeout_s=300)
    yield url
    serve.shutdown()
    ray.shutdown()
    for key in env:
        os.environ.pop(key, None)
