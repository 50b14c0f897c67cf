"""Consent, erasure and pseudonymous logs on the running app (two ingress replicas behind
HAProxy, embedded state), over HTTP."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from serving.settings import Settings
from tests.e2e.conftest import until

pytestmark = pytest.mark.e2e
OPTED, ERASED = (
    19_801,
    19_803,
)  # customers this module changes: above every range another e2e test needs found


def _by_replica(client: httpx.Client, customer_id: int, n: int = 16) -> dict[str, set[str]]:
    """Reasons each replica answered for one customer over ``n`` calls (HAProxy spreads them)."""
    seen: dict[str, set[str]] = {}
    for _ in range(n):
        r = client.post("/v1/score", json={"customer_ids": [customer_id, customer_id + 1]})
        assert r.status_code == 200, r.text
        seen.setdefault(r.headers["x-reengage-replica"], set()).add(r.json()["reason"][0])
    return seen


def test_opt_out_holds_on_every_replica_within_a_second_and_opt_in_resumes(
    app_url: str, admin_headers: dict[str, str]
) -> None:
    with httpx.Client(base_url=app_url, timeout=120) as client:
        r = client.post(
            "/v1/consent",
            json={"customer_id": OPTED, "opted_out": True, "channel": "email"},
            headers=admin_headers,
        )
        assert r.status_code == 200, r.text
        time.sleep(1.0)
        seen = _by_replica(client, OPTED)
        assert len(seen) == 2 and all(reasons == {"opted_out"} for reasons in seen.values()), seen
        score = client.post("/v1/score", json={"customer_ids": [OPTED]}).json()
        assert score["action"] == ["no_contact"] and score["propensity"] == [1.0]
        email = client.post("/v1/reengage", json={"customer_id": OPTED})
        assert email.status_code == 200, email.text
        body = email.json()
        assert body["action"] == "no_contact" and body["reason"] == "opted_out"
        assert body["subject"] is None and body["body"] is None and body["llm"]["written"] is False
        forced = client.post("/v1/reengage", json={"customer_id": OPTED, "action": "winback_email"})
        assert forced.status_code == 409 and forced.json()["error"]["type"] == "opted_out"
        assert client.get(f"/v1/consent/{OPTED}", headers=admin_headers).json()["opted_out"] is True
        assert (
            client.get(f"/v1/consent/{OPTED}").status_code == 401
        )  # the feedback group: a CRM's token

        back = client.post(
            "/v1/consent", json={"customer_id": OPTED, "opted_out": False}, headers=admin_headers
        )
        assert back.status_code == 200
        time.sleep(1.0)
        assert all("opted_out" not in reasons for reasons in _by_replica(client, OPTED).values())
        resumed = client.post(
            "/v1/reengage", json={"customer_id": OPTED, "action": "winback_email"}
        ).json()
        assert resumed["llm"]["written"] is True and resumed["body"]


def _online(settings: Settings, customer_id: int) -> dict[str, bool]:
    """Whether each view holds the customer, read from the online store itself."""
    from feature_store.online_store import kv_store_for
    from feature_store.online_store.layout import key_prefix, view_prefix
    from feature_store.repo import load_store

    store = load_store(settings.features)
    kv, prefix = kv_store_for(store.config), key_prefix(store.config)
    views = [v.name for v in store.list_feature_views()]
    fetched = kv.fetch([view_prefix(prefix, v) for v in views], np.array([customer_id], np.int64))
    return {v: bool(r.found[0]) for v, r in zip(views, fetched.views)}


def _decision_log(settings: Settings) -> tuple[list[Any], Any]:
    from serving.bandit.state import open_store

    store = open_store(settings.bandit)
    try:
        return store.read_log()[0], dict(store.ledger.counts())  # type: ignore[attr-defined]
    finally:
        store.close()


def test_erasure_removes_the_customer_everywhere_and_a_rebuild_does_not_bring_them_back(
    app_url: str, admin_token: str, settings: Settings
) -> None:
    from typer.testing import CliRunner

    from serving.build import run_build
    from serving.cli import app
    from serving.privacy.pseudonym import pseudonym_hex, pseudonym_key, pseudonyms
    from serving.shared_state import open_shared_state

    with httpx.Client(base_url=app_url, timeout=120) as client:
        for _ in range(3):
            client.post("/v1/score", json={"customer_ids": [ERASED, ERASED + 1]})
        sent = client.post(
            "/v1/reengage", json={"customer_id": ERASED, "action": "discount_offer"}
        ).json()
        assert sent["llm"]["written"] is True
        assert all(_online(settings, ERASED).values())
        out = CliRunner().invoke(
            app,
            ["privacy", "erase", str(ERASED), "--url", app_url, "--json"],
            env={"REENGAGE_TOKEN": admin_token},
        )
        assert out.exit_code == 0, out.output
        assert (
            '"suppressed": true' in out.output
            and '"rows_treatment": "pseudonymised beyond recovery"' in out.output
        )
        assert until(
            lambda: all(
                not f
                for f in (client.post("/v1/score", json={"customer_ids": [ERASED]}).json()["found"])
            ),
            5.0,
        )
        assert not any(_online(settings, ERASED).values())
        key = pseudonym_key(settings.privacy)
        mine = pseudonyms(np.array([ERASED]), key)[0]
        batches, contacts = _decision_log(settings)
        assert not any(np.isin([mine, ERASED], b.customer_ids).any() for b in batches)
        assert ERASED not in contacts
        shared = open_shared_state(settings)
        try:
            assert shared.get("consent", str(ERASED)) is None
            assert pseudonym_hex(ERASED, key) in shared.items("suppression")
        finally:
            shared.close()
        assert client.post("/v1/reengage", json={"customer_id": ERASED}).status_code == 404

        run_build(settings, steps=("materialize",), force=True)  # the source still holds them
        assert not any(_online(settings, ERASED).values())
        assert all(_online(settings, ERASED + 1).values())
        assert client.post("/v1/score", json={"customer_ids": [ERASED, ERASED + 1]}).json()[
            "found"
        ] == [False, True]


def _log_files(settings: Settings) -> list[Path]:
    import ray

    logs = Path(ray._private.worker._global_node.get_logs_dir_path())
    files = [p for p in logs.rglob("*") if p.is_file()]
    return files + [p for p in (settings.auth.audit_log,) if p is not None and p.exists()]


def test_after_1000_decisions_and_20_emails_no_log_holds_an_id_a_name_or_an_address(
    app_url: str, settings: Settings
) -> None:
    from feature_store.repo import load_store

    ids = np.arange(12_000, 13_000)
    written = ids[::50][:20]
    with httpx.Client(base_url=app_url, timeout=300) as client:
        r = client.post("/v1/score", json={"customer_ids": ids.tolist()})
        assert r.status_code == 200 and all(r.json()["found"])
        emails = [
            client.post(
                "/v1/reengage", json={"customer_id": int(c), "action": "discount_offer"}
            ).json()
            for c in written
        ]
    assert all(e["llm"]["written"] for e in emails)
    store = load_store(settings.features)
    contact = store.get_online_features(
        features=["customer_contact:first_name", "customer_contact:email"],
        entity_rows=[{"customer_id": int(c)} for c in written],
    ).to_dict()
    names, addresses = set(contact["first_name"]), set(contact["email"])
    assert len(addresses) == 20 and all("@" in a for a in addresses)
    texts = [e["body"].split("\n")[0] for e in emails if len(e["body"].split("\n")[0]) > 24] + [
        e["subject"] for e in emails if len(e["subject"]) > 24
    ]
    time.sleep(1.0)  # the request lines and the decision log are written
    secrets = [s.encode() for s in addresses | {n for n in names if len(n) >= 5} | set(texts)]
    # a raw id as a log would carry it: the scored list (consecutive ids), a field, a path
    pairs = [rb"%d,\s*%d\b" % (k, k + 1) for k in ids[:200].tolist()]
    single = b"|".join(b"%d" % c for c in [*written.tolist(), OPTED, ERASED])
    as_id = re.compile(
        b"|".join(pairs) + rb"|customer_ids?\W{0,4}(?:" + single + rb")\b"
        rb"|/(?:consent|customers)/(?:" + single + rb")\b"
    )
    assert as_id.search(b'{"customer_ids":[12000, 12001, 12002]}')  # the check can fail
    assert as_id.search(b"DELETE /v1/admin/customers/%d 200" % ERASED) and as_id.search(
        b'"customer_id": %d}' % OPTED
    )
    files = _log_files(settings)
    assert any(p.name.startswith("reengage_requests_") for p in files)
    for path in files:
        data = path.read_bytes()
        found = [s for s in secrets if s in data]
        assert not found, f"{path} holds {found[:3]}"
        hit = as_id.search(data)
        assert hit is None, (
            f"{path} holds a raw customer id: {data[max(0, hit.start() - 80) : hit.end() + 40]!r}"
        )
    batches, _ = _decision_log(settings)
    logged = np.concatenate([b.customer_ids for b in batches])
    assert not np.isin(ids, logged).any()  # the decision log holds pseudonyms only
