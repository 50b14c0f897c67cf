"""The audit log: appended, fsync'd JSON lines; the async action wrapper; `reengage audit`."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from serving import audit
from serving.errors import ModelNotFound
from serving.settings import load_settings


def _settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    return load_settings({"data_dir": str(tmp_path / "data")})


def test_record_appends_fsynced_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tmp_path)
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real(fd))
    entry = audit.record(
        settings, "rollout.promote", actor="ops", model="churn", version=3, details={"forced": True}
    )
    assert synced, "each durable entry is fsync'd"
    assert entry["version"] == "3" and entry["result"] == "ok"
    audit.record(
        settings, "rollout.rollback", actor="ops", model="churn", result="error", message="boom"
    )
    lines = settings.auth.audit_log.read_text().splitlines()
    assert [json.loads(x)["action"] for x in lines] == ["rollout.promote", "rollout.rollback"]
    first = json.loads(lines[0])
    assert set(first) == {
        "time",
        "ts",
        "actor",
        "action",
        "model",
        "version",
        "result",
        "message",
        "details",
        "pid",
    }
    assert first["details"] == {"forced": True}
    with pytest.raises(ValueError):
        audit.record(settings, "x", actor="ops", result="maybe")  # type: ignore[arg-type]


def test_action_records_ok_or_the_mapped_error(tmp_path: Path) -> None:
    settings = _settings(tmp_path)

    async def scenario() -> None:
        async with audit.action(settings, "rollout.start", actor="ops", model="churn") as entry:
            entry["version"] = "2"
            entry["details"]["weights"] = {"1": 0.9, "2": 0.1}
        with pytest.raises(ModelNotFound):
            async with audit.action(settings, "repository.load", actor="ops", model="nope"):
                raise ModelNotFound("model 'nope' is not in the repository", field="model_name")

    asyncio.run(scenario())
    ok, err = audit.audit_log(settings).read()
    assert (ok["result"], ok["version"], ok["details"]) == (
        "ok",
        "2",
        {"weights": {"1": 0.9, "2": 0.1}},
    )
    assert (
        err["result"] == "error"
        and err["message"] == "404 model_not_found: model 'nope' is not in the repository"
    )


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    audit.record(settings, "repository.unload", actor="ops", model="churn")
    with settings.auth.audit_log.open("a") as f:
        f.write('{"time": "2026-')  # a crash mid-write
    assert [e["action"] for e in audit.audit_log(settings).read()] == ["repository.unload"]


def test_audit_cli_filters_and_prints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from serving.cli import app

    monkeypatch.setenv("REENGAGE_DATA_DIR", str(tmp_path / "data"))
    settings = load_settings({})
    runner = CliRunner()
    assert "no audit log yet" in runner.invoke(app, ["audit"]).output
    audit.record(settings, "repository.unload", actor="ops", model="churn")
    audit.record(
        settings, "repository.load", actor="ops", model="engagement", details={"versions": ["1"]}
    )
    audit.record(
        settings,
        "POST /v2/repository/models/churn/unload",
        actor="anonymous",
        result="denied",
        message="401 unauthenticated",
    )
    table = runner.invoke(app, ["audit"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert (
        "repository.unload" in table.output
        and "denied" in table.output
        and "3 shown" in table.output
    )

    def rows(*args: str) -> list[dict[str, Any]]:
        out = runner.invoke(app, ["audit", "--json", *args])
        assert out.exit_code == 0, out.output
        return [json.loads(x) for x in out.output.splitlines()]

    assert [e["model"] for e in rows("--model", "churn")] == ["churn"]
    assert [e["action"] for e in rows("--action", "repository")] == [
        "repository.unload",
        "repository.load",
    ]
    assert [e["actor"] for e in rows("--result", "denied")] == ["anonymous"]
    assert len(rows("--last", "1")) == 1 and len(rows("--since", "1h")) == 3
    assert rows("--since", "2999-01-01T00:00:00Z") == []
    assert runner.invoke(app, ["audit", "--since", "yesterday"]).exit_code != 0
