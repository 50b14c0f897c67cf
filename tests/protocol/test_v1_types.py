"""v1 wire types: the error body and the enumerations agree with what the server builds."""

from __future__ import annotations

import typing

import pytest
from pydantic import ValidationError

from serving import errors
from serving.bandit.state import REASONS
from serving.protocol.v1 import ErrorResponse, Reason, ScoreRequest


def _subclasses(cls: type) -> list[type]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_subclasses(sub))]


@pytest.mark.parametrize("cls", [errors.ReengageError, *_subclasses(errors.ReengageError)])
def test_every_error_body_fits_the_error_type(cls: type[errors.ReengageError]) -> None:
    for field in (None, "customer_ids[3]"):
        body = cls("bad", field).to_body()
        assert ErrorResponse.model_validate(body).model_dump() == body


def test_error_response_is_exact() -> None:
    with pytest.raises(ValidationError):
        ErrorResponse.model_validate({"error": "a string, as on /v2"})
    with pytest.raises(ValidationError):
        ErrorResponse.model_validate(
            {"error": {"type": "x", "message": "y"}}
        )  # field is always sent


def test_reasons_are_the_bandits() -> None:
    assert set(typing.get_args(Reason)) == set(REASONS)


def test_score_request_bounds() -> None:
    with pytest.raises(ValidationError):
        ScoreRequest.model_validate({"customer_ids": []})
    assert ScoreRequest.model_validate_json(b'{"customer_ids": [0, 7]}').customer_ids == [0, 7]
