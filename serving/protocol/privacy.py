"""Wire types of consent (``/v1/consent``, the feedback group) and erasure
(``DELETE /v1/admin/customers/{customer_id}``, admin)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, StrictBool

from serving.protocol.v1 import CustomerId, _Strict

Channel = Literal["email", "all"]


class ConsentRequest(_Strict):
    customer_id: CustomerId
    opted_out: StrictBool
    channel: Channel = Field(
        "all", description="every action reaches the customer by email: both govern every contact"
    )


class ConsentResponse(_Strict):
    customer_id: int
    channel: Channel
    opted_out: bool
    effective_at: float | None = Field(
        description="epoch seconds the choice took effect; null: never recorded"
    )


class ConsentStatus(ConsentResponse):
    suppressed: bool = Field(
        description="erased: only a suppression entry (keyed pseudonym) remains; opted out"
    )


class OnlineRemoved(_Strict):
    records: int
    by_view: dict[str, int]


class DecisionsRemoved(_Strict):
    available: bool
    rows: int | None = None
    rows_treatment: str | None = Field(
        None,
        description="pseudonymised beyond recovery: random pseudonym, "
        "no context, no action; offsets kept",
    )
    rewards: int | None = None
    contact_ledger: int | None = None
    reason: str | None = None


class Removed(_Strict):
    online_store: OnlineRemoved
    decision_log: DecisionsRemoved
    consent_record: bool


class ErasureResponse(_Strict):
    customer_id: int
    erased_at: float
    removed: Removed
    suppressed: bool
