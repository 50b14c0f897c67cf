"""The layer contracts in pyproject.toml hold, and breaking one fails `lint-imports`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from serving.settings import project_root

ROOT = project_root()
LINT = str(Path(sys.executable).parent / "lint-imports")
NO_TOOLS = "serving never imports the benchmarks, load tests or training code"
TRAINING = "training imports only serving's lower layers"


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [LINT, "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's Python sources and pyproject.toml, copied to break them safely."""
    root = tmp_path_factory.mktemp("tree")
    for package in ("serving", "feature_store", "model_repo", "loadtests"):
        shutil.copytree(
            ROOT / package,
            root / package,
            ignore=shutil.ignore_patterns("*.pyc", "__pycache__", "data"),
        )
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def test_the_project_keeps_every_contract() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        (
            "feature_store/__init__.py",
            "import serving.settings",
            "the feature store never imports serving",
        ),
        (
            "serving/components/offload.py",
            "def _f():\n    import ray\n",
            "import neither ray nor fastapi",
        ),
        (
            "serving/dataplane.py",
            "def _f():\n    from serving.routes import rest_v1\n",
            "serving: edge -> routes",
        ),
        # the planes never reach up to the composition root that holds them
        (
            "serving/planes/kserve.py",
            "def _f():\n    from serving import dataplane\n",
            "serving: edge -> routes",
        ),
        # the middleware and the routes are independent siblings
        (
            "serving/middleware/drain.py",
            "def _f():\n    from serving.routes import rest_v1\n",
            "serving: edge -> routes",
        ),
        (
            "serving/planes/scores.py",
            "def _f():\n    import fastapi\n",
            "import neither ray nor fastapi",
        ),
        (
            "serving/middleware/auth.py",
            "def _f():\n    import starlette\n",
            "import neither ray nor fastapi",
        ),
        # the rollout plane too, and the components never reach up to a plane
        (
            "serving/planes/rollouts.py",
            "def _f():\n    from serving import dataplane\n",
            "serving: edge -> routes",
        ),
        (
            "serving/components/evidence.py",
            "def _f():\n    from serving.planes import rollouts\n",
            "serving: edge -> routes",
        ),
        (
            "serving/planes/rollouts.py",
            "def _f():\n    import fastapi\n",
            "import neither ray nor fastapi",
        ),
        # the benchmarks and training stay out of the server; the CLI's exception is narrow
        (
            "serving/components/models.py",
            "def _f():\n    from loadtests.bench import score\n",
            NO_TOOLS,
        ),
        (
            "serving/runtime/lleaves.py",
            "def _f():\n    from model_repo.training import train\n",
            NO_TOOLS,
        ),
        ("serving/cli.py", "def _f():\n    from loadtests.bench import score\n", NO_TOOLS),
        ("serving/build.py", "def _f():\n    from loadtests.bench import trees\n", NO_TOOLS),
        # training uses serving one way: its lower layers only
        (
            "model_repo/training/train.py",
            "def _f():\n    from serving import dataplane\n",
            TRAINING,
        ),
        (
            "model_repo/training/llm.py",
            "def _f():\n    from loadtests.bench import llm\n",
            TRAINING,
        ),
        (
            "feature_store/reader.py",
            "def _f():\n    from loadtests.bench import features\n",
            "the feature store never imports the benchmarks",
        ),
    ],
)
def test_breaking_a_contract_fails_the_check(
    tree: Path, module: str, line: str, contract: str
) -> None:
    path = tree / module
    original = path.read_text()
    path.write_text(original + "\n" + line + "\n")
    try:
        result = _lint(tree)
    finally:
        path.write_text(original)
    assert result.returncode != 0
    assert contract in " ".join(result.stdout.split())  # rich wraps long names
    assert "BROKEN" in result.stdout
