"""Consent and erasure, as the dataplane offers them (docs/api.md, "Consent and erasure").

Consent records go to the shared state (``serving.privacy.ConsentBook``); every replica's
``ConsentView`` picks them up within ``privacy.consent_refresh_s``. An erasure reaches
every store that holds the customer, in an order that never opens a window for contact:

1. the customer is opted out and a suppression entry (keyed pseudonym) is written;
2. the suppression entries are exported for materialization, then the online records of
   every view (features, name, email) are deleted;
3. the decision log's rows are made unlinkable, rewards and contact times deleted;
4. the consent record, which holds the id, is deleted: only the suppression entry stays.

A failure part way leaves the customer opted out, and a retry finishes the job.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from serving import audit
from serving.components.api import Bandit, Features
from serving.components.bandit_answers import LogErasure
from serving.privacy import ConsentBook
from serving.privacy.consent import CONSENT, SUPPRESSION
from serving.privacy.pseudonym import key_source
from serving.settings import Settings

LOG_ERASURE = (
    "pseudonymised beyond recovery"  # what happens to decision-log rows (records.tombstone)
)


@dataclass(frozen=True, slots=True)
class Consent:
    """A customer's choice as recorded (``protocol.privacy.ConsentResponse``)."""

    customer_id: int
    channel: str  # email | all: either governs every contact
    opted_out: bool
    effective_at: float | None  # epoch seconds; None: never recorded

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> Consent:
        """From ``ConsentBook.set``'s record."""
        return cls(
            int(doc["customer_id"]),
            str(doc["channel"]),
            bool(doc["opted_out"]),
            doc["effective_at"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "channel": self.channel,
            "opted_out": self.opted_out,
            "effective_at": self.effective_at,
        }


@dataclass(frozen=True, slots=True)
class ConsentStanding(Consent):
    """A customer's standing (``protocol.privacy.ConsentStatus``): the record, else opted
    out by a suppression entry, else never recorded."""

    suppressed: bool  # erased: only the keyed pseudonym's entry remains

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> ConsentStanding:
        """From ``ConsentBook.get``'s answer."""
        return cls(
            int(doc["customer_id"]),
            str(doc["channel"]),
            bool(doc["opted_out"]),
            doc["effective_at"],
            bool(doc["suppressed"]),
        )

    def to_json(self) -> dict[str, Any]:
        # named, not super(): a slots dataclass is a new class that super()'s cell misses
        return {**Consent.to_json(self), "suppressed": self.suppressed}


@dataclass(frozen=True, slots=True)
class OnlineRemoved:
    """The online records an erasure deleted, per feature view."""

    by_view: Mapping[str, int]

    @property
    def records(self) -> int:
        return sum(self.by_view.values())

    def to_json(self) -> dict[str, Any]:
        return {"records": self.records, "by_view": dict(self.by_view)}


@dataclass(frozen=True, slots=True)
class DecisionsRemoved:
    """What an erasure did to the decision log, or why it did nothing there (no bandit)."""

    erased: LogErasure | None
    reason: str | None = None

    @classmethod
    def unavailable(cls, reason: str) -> DecisionsRemoved:
        return cls(None, reason)

    @property
    def available(self) -> bool:
        return self.erased is not None

    def to_json(self) -> dict[str, Any]:
        """The reason alone when unavailable (``protocol.privacy.DecisionsRemoved``)."""
        if self.erased is None:
            return {"available": False, "reason": self.reason}
        return {
            "available": True,
            "rows": self.erased.decision_rows,
            "rows_treatment": LOG_ERASURE,
            "rewards": self.erased.rewards,
            "contact_ledger": self.erased.contacts,
        }


@dataclass(frozen=True, slots=True)
class Removed:
    """What an erasure removed from each store (also the audit entry's ``removed``)."""

    online_store: OnlineRemoved
    decision_log: DecisionsRemoved
    consent_record: bool  # the customer had a consent record (it held the id)

    def to_json(self) -> dict[str, Any]:
        return {
            "online_store": self.online_store.to_json(),
            "decision_log": self.decision_log.to_json(),
            "consent_record": self.consent_record,
        }


@dataclass(frozen=True, slots=True)
class Erasure:
    """An erasure's answer (``protocol.privacy.ErasureResponse``)."""

    customer_id: int
    erased_at: float
    removed: Removed
    suppressed: bool = True  # only the keyed pseudonym's suppression entry remains

    def to_json(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "erased_at": self.erased_at,
            "removed": self.removed.to_json(),
            "suppressed": self.suppressed,
        }


class PrivacyService:
    def __init__(self, settings: Settings, features: Features, bandit: Bandit | None) -> None:
        self.settings, self.features, self.bandit = settings, features, bandit
        self._book: ConsentBook | None = None

    def book(self) -> ConsentBook:
        if self._book is None:
            self._book = ConsentBook.open(self.settings)
        return self._book

    async def set_consent(self, customer_id: int, opted_out: bool, channel: str) -> Consent:
        recorded = await asyncio.to_thread(lambda: self.book().set(customer_id, opted_out, channel))
        return Consent.of(recorded)

    async def get_consent(self, customer_id: int) -> ConsentStanding:
        return ConsentStanding.of(await asyncio.to_thread(lambda: self.book().get(customer_id)))

    async def erase(self, customer_id: int, actor: str) -> Erasure:
        """Erase one customer from every store (audited under its pseudonym, never the id)."""
        book = await asyncio.to_thread(self.book)
        now = time.time()
        async with audit.action(self.settings, "customer.erase", actor=actor) as entry:
            entry["details"]["pseudonym"] = book.pseudonym(customer_id)
            had_consent = (
                await asyncio.to_thread(book.store.get, CONSENT, str(customer_id))
            ) is not None
            await asyncio.to_thread(
                book.set, customer_id, True, "all", now
            )  # 1: no contact from here on
            await asyncio.to_thread(
                book.store.put,
                SUPPRESSION,
                book.pseudonym(customer_id),
                {"erased_at": round(now, 6)},
            )
            suppressed = sorted(await asyncio.to_thread(book.store.items, SUPPRESSION))
            online = await self.features.forget(
                customer_id, suppressed, key_source(self.settings.privacy)
            )  # 2
            decisions = await self._erase_decisions(customer_id)  # 3
            await asyncio.to_thread(book.store.delete, CONSENT, str(customer_id))  # 4
            removed = Removed(OnlineRemoved(online), decisions, had_consent)
            entry["details"]["removed"] = removed.to_json()
        return Erasure(customer_id, round(now, 6), removed)

    async def _erase_decisions(self, customer_id: int) -> DecisionsRemoved:
        if self.bandit is None or not self.settings.bandit.enabled:
            return DecisionsRemoved.unavailable("the bandit is disabled on this server")
        return DecisionsRemoved(await self.bandit.erase(customer_id))
