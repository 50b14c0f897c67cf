"""Model versions change under a running app, on every replica, without a restart."""

from __future__ import annotations

import shutil
import time
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
        return {
            (r.headers["x-reengage-replica"], r.status_code)
            for r in (client.get(path) for _ in range(n))
        }


def test_unload_and_load_reach_every_replica(app_url: str, admin_headers: dict[str, str]) -> None:
    triton = httpclient.InferenceServerClient(app_url.split("://", 1)[1])
    triton.unload_model("engagement", headers=admin_headers)  # admin: a token by default
    assert until(
        lambda: {s for _, s in _replica_answers(app_url, "/v2/models/engagement/ready")} == {503},
        30.0,
    )
    triton.load_model("engagement", headers=admin_headers)
    assert until(
        lambda: {s for _, s in _replica_answers(app_url, "/v2/models/engagement/ready")} == {200},
        30.0,
    )
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


def _new_versions(settings: Settings, count: int) -> tuple[str, list[str]]:
    """``count`` copies of the newest churn version as new versions; returns (that version, the
    new ones)."""
    model_dir = Path(settings.models.repo_path) / "churn"
    newest = max((p for p in model_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    made = []
    for k in range(1, count + 1):
        version = str(int(newest.name) + k)
        staging = model_dir / f".{version}.tmp"
        shutil.copytree(newest, staging)
        staging.rename(model_dir / version)
        made.append(version)
    return newest.name, made


def _assignment(client: httpx.Client, customers: list[int]) -> dict[int, str]:
    """Each found customer's churn version, in requests of 500."""
    out: dict[int, str] = {}
    for lo in range(0, len(customers), 500):
        ids = customers[lo : lo + 500]
        body = client.post("/v1/score", json={"customer_ids": ids}).json()
        per_row = body.get("churn_version") or [body["model_versions"]["churn"]] * len(ids)
        out.update({i: v for i, v, f in zip(ids, per_row, body["found"]) if f})
    return out


def test_three_candidates_keep_their_customers_and_promotion_needs_evidence(
    app_url: str, settings: Settings, admin_headers: dict[str, str]
) -> None:
    base, (v2, v3, v4) = _new_versions(settings, 3)
    client = httpx.Client(base_url=app_url, timeout=120)
    admin = httpx.Client(base_url=app_url, timeout=120, headers=admin_headers)

    def loaded() -> bool:
        status = admin.get("/v1/admin/rollout/churn").json()
        return all(
            {v2, v3, v4} <= set(r.get("versions") or []) for r in status["replicas"].values()
        )

    assert until(loaded, 60.0)
    customers = list(range(1, 4_000))

    def policy(**weights: float) -> dict[str, str]:
        body = {
            "default": base,
            "salt": "e2e|three",
            "candidates": [{"version": v, "weight": w} for v, w in weights.items()],
        }
        r = admin.post("/v1/admin/rollout/churn", json=body)
        assert r.status_code == 200, r.text
        return _assignment(client, customers)

    def moved(a: dict[int, str], b: dict[int, str]) -> float:
        return sum(a[c] != b[c] for c in a) / len(a)

    one = policy(**{v2: 10, v3: 10})
    assert {base, v2, v3} == set(one.values())
    two = policy(**{v2: 20, v3: 10})  # raise v2: only default customers move, to v2
    assert all(two[c] == v3 for c in one if one[c] == v3) and all(
        two[c] == v2 for c in one if one[c] == v2
    )
    assert {(one[c], two[c]) for c in one if one[c] != two[c]} == {(base, v2)} and 0.07 < moved(
        one, two
    ) < 0.13
    three = policy(**{v2: 20, v3: 10, v4: 5})  # add v4: from the default alone
    assert {(two[c], three[c]) for c in two if two[c] != three[c]} == {(base, v4)}
    four = policy(**{v2: 5, v3: 10, v4: 5})  # lower v2: its customers go back to the default
    assert {(three[c], four[c]) for c in three if three[c] != four[c]} == {(v2, base)}
    five = policy(**{v2: 5, v4: 5})  # remove v3
    assert {(four[c], five[c]) for c in four if four[c] != five[c]} == {(v3, base)}
    assert _assignment(client, customers[::-1]) == five  # sticky whatever the batch

    refused = admin.post("/v1/admin/rollout/churn/promote", json={"version": v2})
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["type"] == "promotion_refused" and error["evidence"]["verdict"] == "insufficient"
    assert (
        "more decisions per arm" in error["message"]
        and f"margin {settings.models.rollout_margin:g}" in error["message"]
    )
    assert _assignment(client, customers) == five  # nothing changed

    pinned = admin.post(
        "/v1/score",
        json={"customer_ids": customers[:50]},
        headers={"X-Reengage-Version": f"churn={v3}"},
    )
    assert pinned.status_code == 200 and pinned.json()["pinned"] == {"churn": v3}
    assert pinned.json()["model_versions"]["churn"] == v3
    denied = client.post(
        "/v1/score", json={"customer_ids": [1]}, headers={"X-Reengage-Version": f"churn={v3}"}
    )
    assert denied.status_code == 403 and denied.json()["error"]["field"] == "x-reengage-version"

    forced = admin.post("/v1/admin/rollout/churn/promote", json={"version": v2, "force": True})
    assert (
        forced.status_code == 200
        and forced.json()["forced"]
        and forced.json()["policy"]["default"] == v2
    )
    assert set(_assignment(client, customers).values()) == {v2}
    assert admin.post("/v1/admin/rollout/churn/rollback").json()["policy"]["default"] == base
    admin.post("/v1/admin/rollout/churn", json={"default": base})


def test_killing_the_control_actor_mid_canary_moves_no_customer(
    app_url: str, settings: Settings, admin_headers: dict[str, str]
) -> None:
    import ray

    from serving.app import APP_NAME
    from serving.deployments.control import CONTROL_ACTOR
    from tests.e2e.test_rollout_load import Load, _per_customer

    base, (cand,) = _new_versions(settings, 1)
    admin = httpx.Client(base_url=app_url, timeout=120, headers=admin_headers)
    assert until(
        lambda: all(
            cand in (r.get("versions") or [])
            for r in admin.get("/v1/admin/rollout/churn").json()["replicas"].values()
        ),
        60.0,
    )
    r = admin.post(
        "/v1/admin/rollout/churn",
        json={"default": base, "candidates": [{"version": cand, "weight": 30}]},
    )
    assert r.status_code == 200, r.text
    generation = r.json()["generation"]
    with Load(app_url) as load:
        time.sleep(3)
        actor = ray.get_actor(f"{CONTROL_ACTOR}:{APP_NAME}", namespace="reengage")
        ray.kill(actor, no_restart=True)
        killed = time.time()
        time.sleep(8)  # several polls of every replica against the dead actor, then its successor
    assert not load.failures, load.failures[:5]
    assert len(load.between(killed, time.time())) > 100
    seen = _per_customer(load.between(0, time.time()))
    assert {v for versions in seen.values() for v in versions} == {base, cand}
    assert all(len(versions) == 1 for versions in seen.values())  # nobody changed version
    status = admin.get("/v1/admin/rollout/churn").json()  # the successor holds the same canary
    assert (
        status["generation"] == generation and status["policy"]["candidates"][0]["version"] == cand
    )
    successor = ray.get_actor(f"{CONTROL_ACTOR}:{APP_NAME}", namespace="reengage")
    assert successor._actor_id != actor._actor_id
    admin.post("/v1/admin/rollout/churn/rollback")
