"""The OpenAPI schema matches the server: schemathesis (its CLI, as CI would run it) drives
every route of the running HTTP application (uvicorn; real ONNX models, the bandit on
embedded state, in-memory features, the email writer on the tiny trained checkpoint with
the transformers engine; no Ray) with a bounded number of generated requests, an admin
token on each. No 5xx, no status or content type the schema does not declare, and no
status that only the schema's ``default`` (the unexpected 500) covers.

Every operation is covered, the writer's included: /v1/reengage writes real emails,
/v1/completions answers both ways from the examples its schema gives (JSON, and
``"stream": true`` as server-sent events, whose chunked body schemathesis reads to its
end) and its generated bad requests (the JSON 4xx answered before any stream), /v1/models
lists the model.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port
from tests.serving.conftest import LocalFeatures, TableReader, admin_headers

pytest.importorskip("schemathesis")

MAX_EXAMPLES = 10
SEED = 20261130


@pytest.fixture(scope="module")
def live_app(tiny_checkpoint: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory):
    import uvicorn

    from serving.components.bandit import BanditService
    from serving.components.models import ModelService
    from serving.components.writer import WriterService
    from serving.dataplane import DataPlane
    from serving.http import create_app
    from serving.settings import load_settings

    root = tmp_path_factory.mktemp("schema")
    settings = load_settings(
        {
            "models": {"repo_path": str(_model_repo(root / "model_repo"))},
            "data_dir": str(root / "data"),
            "llm": {
                "backend": "transformers",
                "model_path": str(tiny_checkpoint[0]),
                "num_threads": 1,
                "voices": [],
                "max_tokens": 8,
                "temperature": 0.0,
                "timeout_s": 60,
            },
            "bandit": {"state_path": str(root / "bandit"), "sync_interval_s": 0},
            "server": {"request_log": False},
        }
    )
    models = {name: ModelService(name, settings.models) for name in ("churn", "engagement")}
    bandit = BanditService(settings.bandit)
    from serving.monitoring import open_monitor

    answers: list[tuple[str, str, int, str]] = []
    app = _recorded(
        create_app(
            DataPlane(
                settings,
                LocalFeatures(TableReader()),
                models,
                bandit=bandit,
                writer=WriterService(settings.llm),
                monitor=open_monitor(settings),
            )
        ),
        answers,
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
    yield url, admin_headers(settings)["Authorization"], answers
    server.should_exit = True
    thread.join(timeout=10)
    bandit.router.close()


def _recorded(app: Any, answers: list[tuple[str, str, int, str]]) -> Any:
    """``app``, noting each answer's method, path, status and content type in ``answers``:
    what the test asserts schemathesis reached."""

    async def asgi(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)

        async def noted(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                kind = headers.get(b"content-type", b"").decode().split(";")[0]
                answers.append((scope["method"], scope["path"], message["status"], kind))
            await send(message)

        return await app(scope, receive, noted)

    return asgi


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
    url, authorization, answers = live_app
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    done = subprocess.run(
        [
            cli,
            "run",
            f"{url}/openapi.json",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
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
    reached = set(answers)
    # the writer's routes answered for real, the stream included (its chunked body read to the end)
    for answer in [
        ("POST", "/v1/completions", 200, "application/json"),
        ("POST", "/v1/completions", 200, "text/event-stream"),
        ("POST", "/v1/reengage", 200, "application/json"),
        ("GET", "/v1/models", 200, "application/json"),
    ]:
        assert answer in reached, f"schemathesis never got {answer}"
    undeclared = _undeclared(httpx.get(f"{url}/openapi.json").json(), reached)
    assert not undeclared, f"statuses only the schema's 'default' covers: {sorted(undeclared)}"


def _undeclared(schema: dict, answers: set[tuple[str, str, int, str]]) -> set[tuple[str, str, int]]:
    """Answers whose status the operation does not name (schemathesis accepts any status
    under ``default``, the unexpected 500). 405 is the answer to a method the path does not
    have, which schemathesis sends on purpose."""
    operations = [
        (method.upper(), re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), responses)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        for responses in [set(op.get("responses", {}))]
    ]
    found = set()
    for method, path, status, _ in answers:
        if status == 405:
            continue
        declared = [r for m, pattern, r in operations if m == method and pattern.match(path)]
        if declared and not any(str(status) in r for r in declared):
            found.add((method, path, status))
    return found
