"""Consent (``/v1/consent``: the feedback group, as a CRM or email provider calls it) and
erasure (``DELETE /v1/admin/customers/{customer_id}``: admin, audited). Thin: parse,
call the privacy service (``components.privacy``), encode."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from serving.dataplane import DataPlane
from serving.errors import InvalidRequest
from serving.protocol.openapi import error_responses, request_body
from serving.protocol.privacy import ConsentRequest, ConsentResponse, ConsentStatus, ErasureResponse
from serving.protocol.v1 import ErrorResponse
from serving.routes.responses import json_response
from serving.security import actor_of


def _customer(raw: str) -> int:
    """A path id: the same bounds as in a body, the same 422 naming the field."""
    if not raw.isdigit() or int(raw) > 2**63 - 1:
        raise InvalidRequest(
            "customer_id must be an integer in [0, 2**63 - 1]", field="customer_id"
        )
    return int(raw)


def router(dataplane: DataPlane) -> APIRouter:
    r = APIRouter(default_response_class=JSONResponse)
    privacy = dataplane.privacy

    @r.post(
        "/v1/consent",
        response_model=ConsentResponse,
        tags=["consent"],
        summary="Record a customer's opt-out (or opt-in): every replica honours it within 1 s",
        responses=error_responses(ErrorResponse, 400, 422, 503),
        openapi_extra=request_body(ConsentRequest),
    )
    async def set_consent(request: Request) -> Response:
        req = ConsentRequest.model_validate_json(await request.body())
        answer = await privacy.set_consent(req.customer_id, req.opted_out, req.channel)
        return json_response(answer.to_json())

    @r.get(
        "/v1/consent/{customer_id}",
        response_model=ConsentStatus,
        tags=["consent"],
        summary="A customer's consent as recorded",
        responses=error_responses(ErrorResponse, 422, 503),
    )
    async def get_consent(customer_id: str) -> Response:
        return json_response((await privacy.get_consent(_customer(customer_id))).to_json())

    @r.delete(
        "/v1/admin/customers/{customer_id}",
        response_model=ErasureResponse,
        tags=["admin"],
        summary="Erase a customer from every store; only a suppression entry remains",
        responses=error_responses(ErrorResponse, 422, 503),
    )
    async def erase(request: Request, customer_id: str) -> Response:
        erased = await privacy.erase(_customer(customer_id), actor=actor_of(request.scope))
        return json_response(erased.to_json())

    return r
