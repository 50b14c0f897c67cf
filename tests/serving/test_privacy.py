"""Keyed pseudonyms, consent every replica honours, and consent and erasure over HTTP
(the app with the embedded bandit and a feature table)."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from feature_store.pseudonym import _many, _one, pseudonym_hex, pseudonyms
from serving.errors import DependencyUnavailable
from serving.privacy import ConsentBook, ConsentView
from serving.privacy.pseudonym import pseudonym_key
from serving.protocol.privacy import ConsentResponse, ConsentStatus, ErasureResponse
from serving.protocol.v1 import ErrorResponse, ReengageResponse, ScoreResponse
from serving.settings import load_settings
from serving.shared_state import SqliteSharedState
from tests.serving.conftest import TableReader, admin_headers
from tests.serving.test_rest_v1 import ContactFeatures, FakeWriter


def test_siphash_matches_the_reference_vector_and_both_paths_agree() -> None:
    key = bytes(range(16))
    # SipHash-2-4 reference vectors (Aumasson & Bernstein): message 00..07 under key 00..0f
    assert _one(int.from_bytes(bytes(range(8)), "little"), key) == 0x93F5F5799A932462
    ids = np.concatenate(
        [np.arange(-40, 2000) * 7919, [np.iinfo(np.int64).max, np.iinfo(np.int64).min, 8 << 56]]
    )
    vec = _many(ids.astype(np.int64).view(np.uint64), key)
    assert (vec == np.array([_one(int(i), key) for i in ids], dtype=np.uint64)).all()
    assert (
        pseudonyms(ids[:3], key) == pseudonyms(ids, key)[:3]
    ).all()  # small and large batches agree
    assert pseudonym_hex(5, key) == f"{int(pseudonyms(np.array([5]), key).view(np.uint64)[0]):016x}"
    other = pseudonyms(ids, bytes(16))
    assert not np.isin(other, pseudonyms(ids, key)).any()  # another key, unrelated pseudonyms


def test_the_key_is_generated_once_private_and_a_configured_one_wins(tmp_path: Path) -> None:
    settings = load_settings({"data_dir": str(tmp_path)})
    key = pseudonym_key(settings.privacy)
    path = settings.privacy.key_file
    assert len(key) == 16 and path.is_file() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert pseudonym_key(load_settings({"data_dir": str(tmp_path)}).privacy) == key
    configured = load_settings({"data_dir": str(tmp_path), "privacy": {"pseudonym_key": "ab" * 16}})
    assert pseudonym_key(configured.privacy) == bytes.fromhex("ab" * 16)
    assert "abab" not in repr(configured) and "abab" not in configured.model_dump_json()
    with pytest.raises(ValueError, match="32 hex digits"):
        pseudonym_key(load_settings({"privacy": {"pseudonym_key": "abc"}}).privacy)


def test_consent_reaches_another_replicas_view_within_a_second(tmp_path: Path) -> None:
    writer = ConsentBook(SqliteSharedState(tmp_path / "shared.sqlite"), bytes(16))
    view = ConsentView(
        SqliteSharedState(tmp_path / "shared.sqlite"), refresh_s=0.05
    )  # another process's copy
    try:
        assert view.mask(np.arange(10)) is None  # nobody opted out: no work at all
        writer.set(3, True, "email")
        writer.set(7, True)
        deadline = time.monotonic() + 1.0
        while view.mask(np.arange(10)) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert view.mask(np.arange(10)).tolist() == [i in (3, 7) for i in range(10)]
        assert view.is_opted_out(3) and not view.is_opted_out(4)
        writer.set(3, False)
        time.sleep(0.3)
        assert view.mask(np.array([3, 7, 10**12])).tolist() == [False, True, False]
        assert writer.get(7) | {"effective_at": None} == {
            "customer_id": 7,
            "opted_out": True,
            "channel": "all",
            "effective_at": None,
            "suppressed": False,
        }
    finally:
        view.close()


def test_consent_fails_closed_until_it_has_loaded(tmp_path: Path) -> None:
    class Down(SqliteSharedState):
        def generation(self, ns: str) -> int:
            raise DependencyUnavailable("shared state (sqlite) is unavailable: test")

    view = ConsentView(Down(tmp_path / "s.sqlite"), refresh_s=0.05)
    try:
        with pytest.raises(DependencyUnavailable):
            view.mask(np.arange(3))
        with pytest.raises(DependencyUnavailable):
            view.is_opted_out(1)
    finally:
        view.close()


@pytest.fixture
def privacy_client(model_repo: Path, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    from fastapi.testclient import TestClient

    from serving.components.bandit import BanditService
    from serving.components.models import ModelService
    from serving.dataplane import DataPlane
    from serving.http import create_app

    settings = load_settings(
        {
            "models": {"repo_path": str(model_repo)},
            "data_dir": str(tmp_path / "data"),
            "bandit": {
                "state_path": str(tmp_path / "bandit"),
                "seed": 0,
                "sync_interval_s": 0,
                "holdout_share": 0.0,
                "epsilon": 1.0,
            },
            "privacy": {"consent_refresh_s": 0.05},
        }
    )
    reader = TableReader()
    models = {name: ModelService(name, settings.models) for name in ("churn", "engagement")}
    bandit = BanditService(settings.bandit, pseudonym_key(settings.privacy))
    plane = DataPlane(settings, ContactFeatures(reader), models, bandit=bandit, writer=FakeWriter())
    with TestClient(
        create_app(plane), raise_server_exceptions=False, headers=admin_headers(settings)
    ) as c:
        yield c, plane
    bandit.router.close()


def _until(fn: Any, timeout_s: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def test_opt_out_makes_every_decision_no_contact_and_refuses_a_forced_email(
    privacy_client: Any,
) -> None:
    client, _ = privacy_client
    r = client.post("/v1/consent", json={"customer_id": 4, "opted_out": True, "channel": "email"})
    assert r.status_code == 200, r.text
    body = ConsentResponse.model_validate(r.json())
    assert (
        body.opted_out
        and body.channel == "email"
        and body.effective_at
        and body.effective_at <= time.time()
    )

    def score() -> dict[str, Any]:
        return client.post("/v1/score", json={"customer_ids": [3, 4, 5]}).json()

    got = _until(lambda: (s := score())["reason"][1] == "opted_out" and s)
    ScoreResponse.model_validate(got)
    assert (
        got["action"][1] == "no_contact" and got["propensity"][1] == 1.0 and got["decision_id"][1]
    )
    assert got["reason"][0] == got["reason"][2] == "policy"
    re = client.post("/v1/reengage", json={"customer_id": 4})
    assert re.status_code == 200, re.text
    answer = ReengageResponse.model_validate(re.json())
    assert answer.action == "no_contact" and answer.reason == "opted_out"
    assert answer.subject is None and answer.body is None and not answer.llm.written
    forced = client.post("/v1/reengage", json={"customer_id": 4, "action": "winback_email"})
    assert forced.status_code == 409, forced.text
    err = ErrorResponse.model_validate(forced.json()).error
    assert err.type == "opted_out" and err.field == "action"
    assert (
        client.post("/v1/reengage", json={"customer_id": 4, "action": "no_contact"}).status_code
        == 200
    )
    status = ConsentStatus.model_validate(client.get("/v1/consent/4").json())
    assert status.opted_out and not status.suppressed

    assert (
        client.post("/v1/consent", json={"customer_id": 4, "opted_out": False}).status_code == 200
    )
    back = _until(lambda: (s := score())["reason"][1] == "policy" and s)
    assert back and back["reason"][1] == "policy"
    assert (
        client.post("/v1/reengage", json={"customer_id": 4, "action": "winback_email"}).json()[
            "body"
        ]
        == "hello"
    )


@pytest.mark.parametrize(
    "payload,field",
    [
        ({"opted_out": True}, "customer_id"),
        ({"customer_id": -1, "opted_out": True}, "customer_id"),
        ({"customer_id": 1, "opted_out": "yes"}, "opted_out"),
        ({"customer_id": 1, "opted_out": True, "channel": "sms"}, "channel"),
        ({"customer_id": 1, "opted_out": True, "extra": 1}, "extra"),
    ],
)
def test_consent_rejects_bad_input_naming_the_field(
    privacy_client: Any, payload: dict, field: str
) -> None:
    client, _ = privacy_client
    r = client.post("/v1/consent", json=payload)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field
    assert client.get("/v1/consent/abc").json()["error"]["field"] == "customer_id"


def test_consent_and_erasure_need_their_tokens(privacy_client: Any) -> None:
    client, _ = privacy_client
    bare = {"authorization": ""}
    assert (
        client.post(
            "/v1/consent", json={"customer_id": 1, "opted_out": True}, headers=bare
        ).status_code
        == 401
    )
    assert client.get("/v1/consent/1", headers=bare).status_code == 401
    assert client.delete("/v1/admin/customers/1", headers=bare).status_code == 401


def test_erasure_answers_what_it_removed_is_audited_by_pseudonym_and_suppresses(
    privacy_client: Any,
) -> None:
    client, plane = privacy_client
    client.post("/v1/consent", json={"customer_id": 9, "opted_out": False})
    for _ in range(3):
        client.post("/v1/score", json={"customer_ids": [8, 9]})
    r = client.delete("/v1/admin/customers/9")
    assert r.status_code == 200, r.text
    body = ErasureResponse.model_validate(r.json())
    assert (
        body.removed.online_store.records == 1 and body.removed.consent_record and body.suppressed
    )
    assert body.removed.decision_log.rows == 3
    assert body.removed.decision_log.rows_treatment == "pseudonymised beyond recovery"
    assert client.post("/v1/score", json={"customer_ids": [9]}).json()["found"] == [False]
    # asked about again, the erased customer leaves no pseudonym in the log
    plane.bandit.router.flush()
    logged = np.concatenate([b.customer_ids for b in plane.bandit.router.store.read_log()[0]])
    assert pseudonyms(np.array([9]), pseudonym_key(plane.settings.privacy))[0] not in logged
    assert (
        client.delete("/v1/admin/customers/9").json()["removed"]["online_store"]["records"] == 0
    )  # idempotent
    status = ConsentStatus.model_validate(client.get("/v1/consent/9").json())
    assert status.opted_out and status.suppressed  # the id itself is gone from the consent store
    book = plane.privacy.book()
    assert book.store.get("consent", "9") is None and book.pseudonym(9) in book.store.items(
        "suppression"
    )
    audit = [json.loads(line) for line in plane.settings.auth.audit_log.read_text().splitlines()]
    entry = [e for e in audit if e["action"] == "customer.erase"][-1]
    assert entry["result"] == "ok" and entry["details"]["pseudonym"] == book.pseudonym(9)
    assert '"9"' not in json.dumps(entry) and ":9," not in json.dumps(entry)
    assert (
        client.post("/v1/consent", json={"customer_id": 9, "opted_out": False}).status_code == 200
    )
    assert not client.get("/v1/consent/9").json()[
        "suppressed"
    ]  # a new opt-in lifts the suppression


def test_the_opted_out_filter_agrees_with_isin_including_low_bit_collisions() -> None:
    from serving.privacy.consent import OptedOut

    rng = np.random.default_rng(1)
    held = np.unique(
        np.concatenate([rng.integers(0, 2**40, 5000), rng.integers(0, 2**40, 50) << 22])
    )
    view = OptedOut(held)
    ids = np.concatenate(
        [held[::7], held[::11] + (1 << 22), rng.integers(0, 2**40, 5000), [0, 2**63 - 1]]
    )
    got = view.mask(ids)
    assert got is not None and (got == np.isin(ids, held)).all()
    collide = held[:50] + (1 << 23)  # same low bits: through the table, refused by the search
    expect, got = np.isin(collide, held), view.mask(collide)
    assert (got is None and not expect.any()) or (got == expect).all()
    assert view.holds(int(held[5])) and not view.holds(int(held[5]) + 1)
    assert (
        view.mask(held[5:6]).tolist() == [True] and view.mask(held[5:6] + (1 << 22)) is None
    )  # one id
    assert OptedOut(np.empty(0, np.int64)).mask(ids) is None


def test_one_retention_setting_drives_the_decision_log() -> None:
    s = load_settings({"privacy": {"retention_s": 8 * 86400}})
    assert s.bandit.log_retention_s == 8 * 86400
    assert (
        load_settings(
            {"privacy": {"retention_s": 8 * 86400}, "bandit": {"log_retention_s": 9 * 86400}}
        ).bandit.log_retention_s
        == 9 * 86400
    )  # an explicit log setting still wins
    with pytest.raises(ValueError, match="reward_window_s"):
        load_settings({"privacy": {"retention_s": 3600}})


def test_rollout_evidence_reads_each_rows_version_from_the_log_not_from_the_id() -> None:
    """The log holds pseudonyms, from which the salted split cannot be recomputed: each split
    batch logs its rows' versions (``row_token``) and evidence reads them back."""
    from serving.components.evidence import batch_versions
    from serving.components.traffic_policy import row_token

    token = row_token(np.array([0, 1, 1, -1, 0]), ("3", "4"))
    logged = {"churn": "3,4", "rollout.churn": token}
    assert batch_versions(logged, "churn", 5).tolist() == ["3", "4", "4", None, "3"]
