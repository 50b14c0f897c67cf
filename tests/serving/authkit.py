"""Shared by the auth tests: three tokens with different roles, and an app where every
route group needs a token (or the defaults), over real ONNX models and an embedded bandit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from serving.security import hash_token

# name -> (token, roles); the tokens are fixed so tests can look for them in logs
TOKENS: dict[str, tuple[str, list[str]]] = {
    "reader": (
        "rng_reader-Zq8V1f0aYx2LwT4k9PpR3sUeN7bC6dHjKmA5oQ",
        ["health", "metadata", "inference"],
    ),
    "crm": ("rng_crm-Wc4Yt8nB2xQ6vL0aR5sE9kP3mJ7hG1dF2uZoI", ["feedback"]),
    "ops": ("rng_ops-Tn6Gh2Kc8Vb4Xz0Lq5Rw9Ya3Me7Sd1Fj2Pu4Oi", ["admin"]),
}
ALL_TOKEN = {
    "health": "token",
    "metadata": "token",
    "inference": "token",
    "feedback": "token",
    "admin": "token",
}
# for each group: a token that lacks its role
WRONG = {
    "health": "crm",
    "metadata": "crm",
    "inference": "crm",
    "feedback": "reader",
    "admin": "reader",
}
RIGHT = {
    "health": "reader",
    "metadata": "reader",
    "inference": "reader",
    "feedback": "crm",
    "admin": "ops",
}


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name][0]}"}


def auth_overrides(groups: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    tokens = [
        {"name": n, "sha256": hash_token(t), "roles": roles} for n, (t, roles) in TOKENS.items()
    ]
    return {
        "tokens": tokens,
        "reload_interval_s": 0.05,
        **({"groups": groups} if groups else {}),
        **extra,
    }


def make_settings(
    tmp_path: Path, model_repo: Path, groups: dict[str, str] | None = None, **auth: Any
):  # type: ignore[no-untyped-def]
    from serving.settings import load_settings

    return load_settings(
        {
            "models": {"repo_path": str(model_repo)},
            "data_dir": str(tmp_path / "data"),
            "bandit": {"state_path": str(tmp_path / "bandit"), "seed": 0, "sync_interval_s": 0},
            "auth": auth_overrides(groups, **auth),
        }
    )


@contextmanager
def auth_dataplane(settings: Any, reader: Any) -> Iterator[Any]:
    from serving.components.bandit import BanditService
    from serving.components.models import ModelService
    from serving.dataplane import DataPlane
    from tests.serving.conftest import LocalFeatures

    models = {name: ModelService(name, settings.models) for name in ("churn", "engagement")}
    bandit = BanditService(settings.bandit)
    try:
        yield DataPlane(settings, LocalFeatures(reader), models, bandit=bandit)
    finally:
        bandit.router.close()


@contextmanager
def auth_client(settings: Any, reader: Any) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from serving.http import create_app

    with (
        auth_dataplane(settings, reader) as dataplane,
        TestClient(create_app(dataplane), raise_server_exceptions=False) as client,
    ):
        yield client
