"""Consent and erasure cross from the privacy component to the routes as frozen values whose
``to_json`` is the API's answer (``protocol.privacy``), and they pickle as they are (the
bandit's part comes back through a Ray handle in the split topology)."""

from __future__ import annotations

import asyncio
import json
import pickle
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from serving.components.bandit_answers import LogErasure
from serving.components.privacy import (
    LOG_ERASURE,
    Consent,
    ConsentStanding,
    DecisionsRemoved,
    Erasure,
    OnlineRemoved,
    PrivacyService,
    Removed,
)
from serving.privacy import ConsentBook
from serving.protocol.privacy import ConsentResponse, ConsentStatus, ErasureResponse
from serving.settings import load_settings
from serving.shared_state import SqliteSharedState


def _wire(model: type[BaseModel], answer: dict[str, Any]) -> dict[str, Any]:
    """``answer`` as the API's model reads it back: no field more or less at any level."""
    back = model.model_validate(answer).model_dump(exclude_unset=True)
    assert back == answer
    return back


def _erasure(decisions: DecisionsRemoved) -> Erasure:
    online = OnlineRemoved({"customer_features": 1, "customer_contact": 0})
    return Erasure(9, 1_800_000_000.123456, Removed(online, decisions, consent_record=True))


@pytest.mark.parametrize(
    "decisions",
    [
        DecisionsRemoved(LogErasure(decision_rows=3, rewards=1, contacts=2)),
        DecisionsRemoved.unavailable("the bandit is disabled on this server"),
    ],
)
def test_an_erasure_as_json_is_the_wire_answer(decisions: DecisionsRemoved) -> None:
    erased = _erasure(decisions)
    wire = erased.to_json()
    back = _wire(ErasureResponse, wire)
    assert orjson.dumps(back) == orjson.dumps(wire)  # the model's order, at every level
    assert wire["removed"]["online_store"] == {
        "records": 1,
        "by_view": {"customer_features": 1, "customer_contact": 0},
    }
    log = wire["removed"]["decision_log"]
    if decisions.available:
        assert log == {
            "available": True,
            "rows": 3,
            "rows_treatment": LOG_ERASURE,
            "rewards": 1,
            "contact_ledger": 2,
        }
    else:
        assert log == {"available": False, "reason": decisions.reason}
    assert pickle.loads(pickle.dumps(erased)) == erased


def test_the_bandits_counts_are_read_by_name() -> None:
    done = {"contacts": 4, "rewards": 2, "decision_rows": 7}
    erased = LogErasure.of(done)
    assert (erased.decision_rows, erased.rewards, erased.contacts) == (7, 2, 4)
    assert pickle.loads(pickle.dumps(erased)) == erased


def test_consent_as_recorded_and_as_standing_is_the_wire_answer(tmp_path: Path) -> None:
    book = ConsentBook(SqliteSharedState(tmp_path / "shared.sqlite"), bytes(16))
    recorded = Consent.of(book.set(3, True, "email"))
    wire = recorded.to_json()
    assert orjson.dumps(_wire(ConsentResponse, wire)) == orjson.dumps(wire)
    assert pickle.loads(pickle.dumps(recorded)) == recorded
    book.suppress(5)  # erased: only the pseudonym's entry is left
    for customer, opted_out, suppressed in ((3, True, False), (4, False, False), (5, True, True)):
        standing = ConsentStanding.of(book.get(customer))
        wire = standing.to_json()
        assert orjson.dumps(_wire(ConsentStatus, wire)) == orjson.dumps(wire)
        assert wire == book.get(customer)  # the book's answer, key for key
        assert (standing.opted_out, standing.suppressed) == (opted_out, suppressed)


class _Features:
    async def forget(self, customer_id: int, suppressed: list[str], key_source: str) -> dict:
        return {"customer_features": 1}


class _Bandit:
    async def erase(self, customer_id: int) -> LogErasure:
        return LogErasure(decision_rows=2, rewards=0, contacts=1)


def test_the_audit_entry_records_what_the_answer_says_was_removed(tmp_path: Path) -> None:
    settings = load_settings({"data_dir": str(tmp_path), "bandit": {"state_path": str(tmp_path)}})
    service = PrivacyService(settings, _Features(), _Bandit())  # type: ignore[arg-type]
    erased = asyncio.run(service.erase(11, actor="ops"))
    assert erased.removed.decision_log.available and erased.removed.online_store.records == 1
    lines = settings.auth.audit_log.read_text().splitlines()
    entry = [json.loads(line) for line in lines][-1]
    assert entry["action"] == "customer.erase" and entry["result"] == "ok"
    assert entry["details"]["removed"] == erased.to_json()["removed"]
    standing = asyncio.run(service.get_consent(11))
    assert standing.opted_out and standing.suppressed
    assert standing.effective_at == erased.erased_at  # the suppression entry's time
