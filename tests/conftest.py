"""Session-wide fixtures: a private redis-server on a free port, the wrk binary, and small
models trained once (a churn model, the tiny email writer).

Tests never touch a shared Redis: each session starts its own server (``redis-server``
from Debian's package, installed by ``scripts/test``) on a free loopback port, with no
persistence, and stops it at the end. A missing tool fails the test that needs it, naming
the package: ``scripts/test`` provides both, so nothing skips for lack of them.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.trained_churn import Trained


TESTS = Path(__file__).parent
# Tiers. e2e: the tests under tests/e2e/ (a real Ray Serve application). slow: a module that
# takes long on its own (trains a model, starts Ray or subprocess fleets), listed here by
# path so the tier is one place. unit: everything else, the fast loop (`scripts/test -m unit`).
SLOW_MODULES = frozenset(
    {
        # the whole `reengage build`, the email writer's checkpoint included
        "model_repo/test_build.py",
        "model_repo/test_explain.py",
        "model_repo/test_explain_api.py",  # train both models on 8,000 customers
        "model_repo/test_training.py",  # trains and exports each model
        "feature_store/test_store_cli.py",  # the feast CLI's apply and materialize in subprocesses
        "llm/test_llm_train.py",
        "llm/test_llm_adapters.py",
        "llm/test_llm_transformers.py",  # train a tiny LLM
        "llm/test_llm_remote.py",
        "llm/test_llm_vllm.py",
        "llm/test_llm_vllm_engine.py",
        "serving/test_schema_conformance.py",  # schemathesis over every operation
        "serving/test_stop_local_head.py",  # a real local Ray head
        "bandit/test_bandit_crash.py",
        "bandit/test_bandit_replicas.py",  # process fleets
        "loadtests/test_loadtest_cli.py",  # locust runs
        "test_layers.py",  # lint-imports over copies of the tree, once per broken contract
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks each test e2e (by folder), slow (by module) and otherwise unit."""
    for item in items:
        where = item.path.relative_to(TESTS).as_posix()
        if where.startswith("e2e/"):
            item.add_marker(pytest.mark.e2e)
        if where in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
        if not any(item.get_closest_marker(tier) for tier in ("e2e", "slow", "gpu")):
            item.add_marker(pytest.mark.unit)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server process the tests own; can be stopped and restarted on its port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = require_tool("redis-server")
        self.proc = subprocess.Popen(
            [
                binary,
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
                "--protected-mode",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


def require_tool(name: str) -> str:
    """The path of a binary the tests need; fails (never skips) the test when it is missing."""
    binary = shutil.which(name)
    if binary is None:
        pytest.fail(
            f"{name} is not installed: run the tests with scripts/test, which installs it "
            f"(or apt-get install {name})",
            pytrace=False,
        )
    return binary


@pytest.fixture(scope="session")
def wrk() -> str:
    """The wrk load generator the bench drives."""
    return require_tool("wrk")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """A clean logical database on the session's server for one test."""
    import redis

    if redis_server.proc is None:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    client.close()
    yield redis_server.url


@pytest.fixture(autouse=True, scope="module")
def _stop_token_watches() -> Iterator[None]:
    """An app in a test starts its process's token watch (a thread over the test's data dir):
    stopped after the module (module-scoped apps keep theirs), so threads and open stores do
    not pile up over the session."""
    yield
    import sys

    if "serving.security.shared_tokens" in sys.modules:
        sys.modules["serving.security.shared_tokens"].stop_watches()


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """A small churn model (tests/trained_churn.py), for the runtime and tree-bench tests."""
    from tests.trained_churn import train_small_churn

    return train_small_churn(tmp_path_factory.mktemp("runtime"))


# the tiny email writer: 2 layers, 64 wide, a 256-token context
TINY_LLM = {"vocab_size": 512, "n_positions": 256, "n_embd": 64, "n_layer": 2, "n_head": 2}


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A tiny email-writer checkpoint trained once per session by the real trainer (40
    steps): it proves the pipeline (tokenizer, training, HF files, loading, batched and
    streamed generation), not writing quality. The LLM tests and the schema test serve it."""
    from model_repo.training.llm import build_checkpoint

    out = tmp_path_factory.mktemp("llm") / "email_writer"
    metrics = build_checkpoint(out, steps=40, seed=0, size=TINY_LLM, heldout=4)
    return out, metrics
