"""The OpenAPI schema matches the server: schemathesis (its CLI, as CI would run it) drives
every route of the running HTTP application (uvicorn; real ONNX models, the bandit on
embedded state, in-memory features; no Ray) with a bounded number of generated requests.
No 5xx, and no status the schema does not declare.

The writer's routes (/v1/reengage, /v1/completions, /v1/models) are left out here: with no
LLM they answer the declared 503 ``dependency_unavailable``; they need the e2e app.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.serving.conftest import LocalFeatures, TableReader, admin_headers

pytest.importorskip("schemathesis")

MAX_EXAMPLES = 10
SEED = 20261130
WRITER_ROUTES = r"^/v1/(reengage|completions|models)$"


@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory):
    import uvicorn

    from serving.components.bandit import BanditService
    from serving.components.models import ModelService
    from serving.dataplane import DataPlane
    from serving.http import create_app
    from serving.settings import load_settings

    root = tmp_path_factory.mktemp("schema")
    settings = load_settings(
        {
            "models": {"repo_path": str(_model_repo(root / "model_repo"))},
            "data_dir": str(root / "data"),
            "llm": {"enabled": False},
            "bandit": {"state_path": str(root / "bandit"), "sync_interval_s": 0},
            "server": {"request_log": False},
        }
    )
    models = {name: ModelService(name, settings.models) for name in ("churn", "engagement")}
    bandit = BanditService(settings.bandit)
    from serving.monitoring import open_monitor

    app = create_app(
        DataPlane(
            settings,
            LocalFeatures(TableReader()),
            models,
            bandit=bandit,
            monitor=open_monitor(settings),
        )
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/v2/health/live", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.1)
    yield url, admin_headers(settings)["Authorization"]
    server.should_exit = True
    thread.join(timeout=10)
    bandit.router.close()


def _model_repo(path: Path) -> Path:
    import numpy as np

    from tests.serving.conftest import FEATURES, write_config, write_version

    for name, seed in (("churn", 0), ("engagement", 1)):
        weights = np.random.default_rng(seed).normal(size=len(FEATURES)).astype(np.float32)
        write_config(path / name, name, len(FEATURES))
        write_version(path / name, 1, weights, 0.1, FEATURES)
    return path


def test_schemathesis_finds_no_server_error_and_no_undeclared_status(
    live_app, tmp_path: Path
) -> None:
    url, authorization = live_app
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    done = subprocess.run(
        [
            cli,
            "run",
            f"{url}/openapi.json",
            "--checks",
            "not_a_server_error,status_code_conformance",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--exclude-path-regex",
            WRITER_ROUTES,
            "-H",
            f"Authorization: {authorization}",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    summary = done.stdout[-6000:]
    assert done.returncode == 0, summary
    assert "Tested: " in summary
