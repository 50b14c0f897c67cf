"""Tokens: the bootstrap admin token, the shared state's tokens, tokens from the settings
(a Kubernetes Secret), the client side, the CLI."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from serving.errors import PermissionDenied, Unauthenticated
from serving.security import (
    Authenticator,
    TokenBook,
    bearer_headers,
    client_token,
    ensure_admin_token,
    hash_token,
)
from serving.security.shared_tokens import NS, token_store
from serving.settings import load_settings
from serving.shared_state import open_shared_state

ALL = ["health", "metadata", "inference", "feedback", "admin"]


def _settings(tmp_path: Path, **auth: Any):  # type: ignore[no-untyped-def]
    return load_settings(
        {"data_dir": str(tmp_path / "data"), "auth": {"reload_interval_s": 0.05, **auth}}
    )


def test_first_start_writes_an_admin_token_once_0600_and_shares_only_its_hash(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path)
    path, created = ensure_admin_token(settings)
    assert created and path == tmp_path / "data" / "auth" / "admin.token"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    token = path.read_text().strip()
    assert token.startswith("rng_") and len(token) > 40
    state = open_shared_state(settings)
    generation = state.generation(NS)
    doc = state.get(NS, "admin")
    assert doc is not None and (doc["sha256"], doc["roles"]) == (hash_token(token), ALL)
    shared = settings.data_dir / "state" / "shared.sqlite"
    assert not any(
        token.encode() in p.read_bytes() for p in shared.parent.iterdir()
    )  # only the hash
    assert ensure_admin_token(settings) == (path, False)  # idempotent
    assert path.read_text().strip() == token and state.generation(NS) == generation
    auth = Authenticator(settings)
    for group in ALL:
        assert auth.check(group, f"Bearer {token}").name == "admin"


def test_no_bootstrap_when_disabled_or_an_admin_token_is_configured(tmp_path: Path) -> None:
    off = _settings(tmp_path / "a", bootstrap_admin=False)
    assert ensure_admin_token(off)[1] is False and not off.auth.admin_token_file.exists()
    configured = _settings(
        tmp_path / "b", tokens=[{"name": "ci", "sha256": "a" * 64, "roles": ["admin"]}]
    )
    assert (
        ensure_admin_token(configured)[1] is False and not configured.auth.admin_token_file.exists()
    )


def test_the_admin_file_is_registered_again_in_a_new_store_but_never_once_revoked(
    tmp_path: Path, redis_url: str
) -> None:
    """Switching the state to a new Redis keeps this machine's admin token working; a revoked
    one stays revoked (its entry is kept)."""
    path, _ = ensure_admin_token(_settings(tmp_path))
    token = path.read_text().strip()
    on_redis = load_settings(
        {"data_dir": str(tmp_path / "data"), "state": "redis", "redis_url": redis_url}
    )
    assert ensure_admin_token(on_redis) == (path, False)
    book = TokenBook(open_shared_state(on_redis))
    assert book.state.get(NS, "admin")["sha256"] == hash_token(token)
    assert book.revoke("admin") and not book.revoke("admin")
    ensure_admin_token(on_redis)
    assert book.state.get(NS, "admin")["revoked"]
    store = token_store(on_redis)
    assert store.identify(token) is None


def test_a_token_file_of_an_older_version_is_imported_once(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    file = settings.auth.token_file
    file.parent.mkdir(parents=True)
    file.write_text(
        json.dumps(
            {
                "tokens": [
                    {
                        "name": "crm",
                        "sha256": hash_token("rng_old"),
                        "roles": ["feedback"],
                        "created": "2026-01-01T00:00:00Z",
                    }
                ]
            }
        )
    )
    ensure_admin_token(settings)
    assert not file.exists() and file.with_name("tokens.json.imported").exists()
    assert Authenticator(settings).check("feedback", "Bearer rng_old").name == "crm"


def test_a_corrupt_token_file_is_left_alone_and_the_start_goes_on(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    settings.auth.token_file.parent.mkdir(parents=True)
    settings.auth.token_file.write_text("{not json")
    path, created = ensure_admin_token(settings)
    assert created and settings.auth.token_file.read_text() == "{not json"
    assert (
        Authenticator(settings).check("admin", f"Bearer {path.read_text().strip()}").name == "admin"
    )


def test_client_token_prefers_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path)
    monkeypatch.delenv("REENGAGE_TOKEN", raising=False)
    assert client_token(settings.auth) is None and bearer_headers(None) == {}
    path, _ = ensure_admin_token(settings)
    assert client_token(settings.auth) == path.read_text().strip()
    monkeypatch.setenv("REENGAGE_TOKEN", "rng_from-env")
    assert client_token(settings.auth) == "rng_from-env"
    assert bearer_headers("t") == {"Authorization": "Bearer t"}


def test_check_401_403_and_constant_time_compare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hmac

    settings = _settings(
        tmp_path, tokens=[{"name": "crm", "sha256": hash_token("rng_crm"), "roles": ["feedback"]}]
    )
    auth = Authenticator(settings)
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


def test_hashed_tokens_from_a_secret_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``REENGAGE_AUTH__TOKENS`` as a Kubernetes Secret gives it (``secretKeyRef``): JSON
    hashes and roles, no token text; `token revoke` still refuses one everywhere."""
    secret = json.dumps(
        [
            {"name": "ops", "sha256": hash_token("rng_ops"), "roles": ["admin"]},
            {"name": "crm", "sha256": hash_token("rng_crm"), "roles": ["feedback"]},
        ]
    )
    monkeypatch.setenv("REENGAGE_AUTH__TOKENS", secret)
    monkeypatch.setenv("REENGAGE_AUTH__BOOTSTRAP_ADMIN", "false")
    settings = _settings(tmp_path)
    assert [t.name for t in settings.auth.tokens] == ["ops", "crm"]
    auth = Authenticator(settings)
    assert auth.check("admin", "Bearer rng_ops").name == "ops"
    book = TokenBook(open_shared_state(settings), settings.auth.tokens)
    with pytest.raises(ValueError, match="comes from the settings"):
        book.create("crm", ["feedback"])
    assert book.revoke("crm") and not book.revoke("crm")
    auth.store.watched.refresh()
    with pytest.raises(Unauthenticated):
        auth.check("feedback", "Bearer rng_crm")
    assert auth.check("admin", "Bearer rng_ops").name == "ops"
    assert [(r["name"], r["state"].split()[0]) for r in book.rows()] == [
        ("ops", "valid"),
        ("crm", "revoked"),
    ]


@pytest.mark.parametrize("state", ["embedded", "redis"])
def test_token_cli_create_list_revoke_hash(
    state: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    from serving.cli import app

    monkeypatch.setenv("REENGAGE_DATA_DIR", str(tmp_path / "data"))
    if state == "redis":
        monkeypatch.setenv("REENGAGE_STATE", "redis")
        monkeypatch.setenv("REENGAGE_REDIS_URL", request.getfixturevalue("redis_url"))
    runner = CliRunner()
    created = runner.invoke(
        app, ["token", "create", "crm", "--role", "feedback", "--role", "inference"]
    )
    assert created.exit_code == 0, created.output
    token = created.output.strip().splitlines()[-1]
    assert token.startswith("rng_")
    settings = load_settings({})
    auth = Authenticator(settings)
    assert auth.check("feedback", f"Bearer {token}").name == "crm"
    listed = runner.invoke(app, ["token", "list"])
    assert listed.exit_code == 0 and "crm" in listed.output and "valid" in listed.output
    assert token not in listed.output and hash_token(token) not in listed.output
    hashed = runner.invoke(app, ["token", "hash"], input=token + "\n")
    assert hashed.output.strip() == hash_token(token)
    assert runner.invoke(app, ["token", "create", "x", "--role", "nope"]).exit_code != 0
    assert runner.invoke(app, ["token", "revoke", "crm"]).exit_code == 0
    assert runner.invoke(app, ["token", "revoke", "crm"]).exit_code == 1
    auth.store.watched.refresh()
    with pytest.raises(Unauthenticated):
        auth.check("feedback", f"Bearer {token}")
    assert "revoked" in runner.invoke(app, ["token", "list"]).output
    actions = [json.loads(x)["action"] for x in settings.auth.audit_log.read_text().splitlines()]
    assert actions == ["token.create", "token.revoke"]
    assert token not in settings.auth.audit_log.read_text()
