"""Tokens: the bootstrap admin token, the token file, the client side, the CLI."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from serving.errors import PermissionDenied, Unauthenticated
from serving.security import Authenticator, TokenStore, bearer_headers, client_token, ensure_admin_token, hash_token
from serving.settings import load_settings


def _settings(tmp_path: Path, **auth: Any):  # type: ignore[no-untyped-def]
    return load_settings({"data_dir": str(tmp_path / "data"), "auth": {"reload_interval_s": 0, **auth}})


def test_first_start_writes_an_admin_token_once_0600_and_stores_only_its_hash(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    path, created = ensure_admin_token(settings.auth)
    assert created and path == tmp_path / "data" / "auth" / "admin.token"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    token = path.read_text().strip()
    assert token.startswith("rng_") and len(token) > 40
    stored = json.loads(settings.auth.token_file.read_text())["tokens"]
    assert [(t["name"], t["sha256"], t["roles"]) for t in stored] == [
        ("admin", hash_token(token), ["health", "metadata", "inference", "feedback", "admin"])]
    assert token not in settings.auth.token_file.read_text()
    assert stat.S_IMODE(os.stat(settings.auth.token_file).st_mode) == 0o600
    assert ensure_admin_token(settings.auth) == (path, False)  # idempotent
    assert path.read_text().strip() == token
    auth = Authenticator(settings.auth)
    for group in ("health", "metadata", "inference", "feedback", "admin"):
        assert auth.check(group, f"Bearer {token}").name == "admin"


def test_no_bootstrap_when_disabled_or_an_admin_token_is_configured(tmp_path: Path) -> None:
    off = _settings(tmp_path / "a", bootstrap_admin=False)
    assert ensure_admin_token(off.auth)[1] is False and not off.auth.admin_token_file.exists()
    configured = _settings(tmp_path / "b", tokens=[{"name": "ci", "sha256": "a" * 64, "roles": ["admin"]}])
    assert ensure_admin_token(configured.auth)[1] is False and not configured.auth.admin_token_file.exists()


def test_client_token_prefers_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tmp_path)
    monkeypatch.delenv("REENGAGE_TOKEN", raising=False)
    assert client_token(settings.auth) is None and bearer_headers(None) == {}
    path, _ = ensure_admin_token(settings.auth)
    assert client_token(settings.auth) == path.read_text().strip()
    monkeypatch.setenv("REENGAGE_TOKEN", "rng_from-env")
    assert client_token(settings.auth) == "rng_from-env"
    assert bearer_headers("t") == {"Authorization": "Bearer t"}


def test_check_401_403_and_constant_time_compare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hmac

    settings = _settings(tmp_path, tokens=[{"name": "crm", "sha256": hash_token("rng_crm"), "roles": ["feedback"]}])
    auth = Authenticator(settings.auth)
    assert auth.protected == {"feedback", "admin"}
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    assert auth.check("feedback", b"Bearer rng_crm").name == "crm"
    assert calls  # the comparison is hmac.compare_digest over the hashes
    with pytest.raises(Unauthenticated):
        auth.check("feedback", None)
    with pytest.raises(Unauthenticated, match="unknown or revoked"):
        auth.check("feedback", "Bearer rng_other")
    with pytest.raises(PermissionDenied, match="'crm' lacks the 'admin' role"):
        auth.check("admin", "Bearer rng_crm")
    assert auth.identify("Basic x") is None and auth.identify("Bearer rng_crm").name == "crm"


def test_a_corrupt_token_file_keeps_the_previous_tokens(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    path, _ = ensure_admin_token(settings.auth)
    token = path.read_text().strip()
    store = TokenStore(settings.auth)
    assert store.identify(token).name == "admin"
    settings.auth.token_file.write_text("{not json")
    assert store.identify(token).name == "admin"


def test_token_cli_create_list_revoke_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from serving.cli import app

    monkeypatch.setenv("REENGAGE_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    created = runner.invoke(app, ["token", "create", "crm", "--role", "feedback", "--role", "inference"])
    assert created.exit_code == 0, created.output
    token = created.output.strip().splitlines()[-1]
    assert token.startswith("rng_")
    settings = load_settings({})
    assert Authenticator(settings.auth).check("feedback", f"Bearer {token}").name == "crm"
    listed = runner.invoke(app, ["token", "list"])
    assert listed.exit_code == 0 and "crm" in listed.output and token not in listed.output
    hashed = runner.invoke(app, ["token", "hash"], input=token + "\n")
    assert hashed.output.strip() == hash_token(token)
    assert runner.invoke(app, ["token", "create", "x", "--role", "nope"]).exit_code != 0
    assert runner.invoke(app, ["token", "revoke", "crm"]).exit_code == 0
    assert runner.invoke(app, ["token", "revoke", "crm"]).exit_code == 1
    with pytest.raises(Unauthenticated):
        Authenticator(settings.auth).check("feedback", f"Bearer {token}")
    actions = [json.loads(x)["action"] for x in settings.auth.audit_log.read_text().splitlines()]
    assert actions == ["token.create", "token.revoke"]
    assert token not in settings.auth.audit_log.read_text()
