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
from typing import Any

from serving import audit
from serving.components.api import Bandit, Features
from serving.privacy import ConsentBook
from serving.privacy.consent import CONSENT, SUPPRESSION
from serving.privacy.pseudonym import key_source
from serving.settings import Settings

LOG_ERASURE = (
    "pseudonymised beyond recovery"  # what happens to decision-log rows (records.tombstone)
)


class PrivacyService:
    def __init__(self, settings: Settings, features: Features, bandit: Bandit | None) -> None:
        self.settings, self.features, self.bandit = settings, features, bandit
        self._book: ConsentBook | None = None

    def book(self) -> ConsentBook:
        if self._book is None:
            self._book = ConsentBook.open(self.settings)
        return self._book

    async def set_consent(self, customer_id: int, opted_out: bool, channel: str) -> dict[str, Any]:
        return await asyncio.to_thread(lambda: self.book().set(customer_id, opted_out, channel))

    async def get_consent(self, customer_id: int) -> dict[str, Any]:
        return await asyncio.to_thread(lambda: self.book().get(customer_id))

    async def erase(self, customer_id: int, actor: str) -> dict[str, Any]:
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
            removed = {
                "online_store": {"records": sum(online.values()), "by_view": online},
                "decision_log": decisions,
                "consent_record": had_consent,
            }
            entry["details"]["removed"] = removed
        return {
            "customer_id": customer_id,
            "erased_at": round(now, 6),
            "removed": removed,
            "suppressed": True,
        }

    async def _erase_decisions(self, customer_id: int) -> dict[str, Any]:
        if self.bandit is None or not self.settings.bandit.enabled:
            return {"available": False, "reason": "the bandit is disabled on this server"}
        done = await self.bandit.erase(customer_id)
        return {
            "available": True,
            "rows": done["decision_rows"],
            "rows_treatment": LOG_ERASURE,
            "rewards": done["rewards"],
            "contact_ledger": done["contacts"],
        }
