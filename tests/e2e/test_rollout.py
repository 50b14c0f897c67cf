"""Model versions change under a running app, on every replica, without a restart."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
import tritonclient.http as httpclient

from serving.settings import Settings

from tests.e2e.conftest import until

pytestmark = pytest.mark.e2e


def _replica_answers(url: str, path: str, n: int = 12) -> set[tuple[str, int]]:
    """(replica, status) pairs seen over several calls: both replicas, as HAProxy spreads them."""
    with httpx.Client(base_url=url, timeout=30) as client:
        return {(r.headers["x-reengage-replica"], r.status_code) for r in (client.get(path) for _ in range(n))}


def test_unload_and_load_reach_every_replica(app_url: str, admin_headers: dict[str, str]) -> None:
    triton = httpclient.InferenceServerClient(app_url.split("://", 1)[1])
    triton.unload_model("engagement", headers=admin_headers)  # admin: a token by default
    assert until(lambda: {s for _, s in _replica_answers(app_url, "/v2/models/engagement/ready")} == {503}, 30.0)
    triton.load_model("engagement", headers=admin_headers)
    assert until(lambda: {s for _, s in _replica_answers(app_url, "/v2/models/engagement/ready")} == {200}, 30.0)
    assert len({r for r, _ in _replica_answers(app_url, "/v2/models/engagement/ready")}) == 2


def test_new_version_on_disk_goes_live_everywhere(app_url: str, settings: Settings) -> None:
    model_dir = Path(settings.models.repo_path) / "churn"
    newest = max((p for p in model_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    new = str(int(newest.name) + 1)
    staging = model_dir / f".{new}.tmp"
    shutil.copytree(newest, staging)
    staging.rename(model_dir / new)  # atomic, as the exporter writes versions

    def live() -> bool:
        with httpx.Client(base_url=app_url, timeout=30) as client:
            bodies = [client.post("/v1/score", json={"customer_ids": [1]}).json() for _ in range(8)]
        return all(b["model_versions"]["churn"] == new for b in bodies)

    assert until(live, 30.0)
    meta = httpx.get(f"{app_url}/v2/models/churn", timeout=30).json()
    assert new in meta["versions"] and newest.name in meta["versions"]
