"""The `reengage` CLI: help on every command, and a real small build through its options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from serving.cli import app
from tests.e2e.conftest import make_workspace

runner = CliRunner()


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["build"],
        ["serve"],
        ["stop"],
        ["demo"],
        ["bench", "score"],
        ["bench", "features"],
        ["bench", "bandit"],
        ["bench", "llm"],
        ["loadtest"],
        ["ope"],
    ],
)
def test_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_build_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    overrides = make_workspace(tmp_path)
    monkeypatch.setenv("REENGAGE_FEATURES__REPO_PATH", overrides["features"]["repo_path"])
    monkeypatch.setenv("REENGAGE_MODELS__REPO_PATH", overrides["models"]["repo_path"])
    monkeypatch.setenv("REENGAGE_DATA_DIR", overrides["data_dir"])
    result = runner.invoke(
        app,
        [
            "build",
            "--customers",
            "400",
            "--no-llm",
            "--steps",
            "generate,apply,materialize,train_churn",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{") :])
    assert summary["customers"] == 400 and summary["models"]["churn"]["version"] == 1
    assert summary["steps"]["train_engagement"]["skipped"] and summary["steps"]["llm"]["skipped"]
    assert (Path(overrides["models"]["repo_path"]) / "churn" / "1" / "model.onnx").is_file()
    bad = runner.invoke(app, ["build", "--steps", "generate,typo"])
    assert bad.exit_code != 0
