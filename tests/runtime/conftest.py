"""The runtime tests' fixtures; the trained churn model itself is ``trained``
(tests/conftest.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.trained_churn import Trained


@pytest.fixture
def repo_copy(trained: Trained, tmp_path: Path) -> Path:
    """A private copy of the trained repository, for tests that break or edit it."""
    dst = tmp_path / "model_repo"
    shutil.copytree(trained.models, dst)
    return dst
