"""Guardrails through the real EmailWriter, with an engine that returns scripted drafts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from serving.errors import DependencyUnavailable, InvalidRequest, Timeout
from serving.llm.engine import Generation, LLMEngine, SamplingParams, TextDelta
from serving.llm.guardrails import GuardrailConfig, check_email, fallback_email, footer_text
from serving.llm.prompts import format_completion
from serving.llm.service import EmailRequest, EmailWriter
from serving.settings import LLMSettings

FACTS = {"customer_id": 42, "first_name": "Ana", "plan_name": "Plus", "region_name": "West"}
GOOD_BODY = "Hi Ana, we have added 15% off your next order to your account. See you soon."


class ScriptedEngine(LLMEngine):
    backend = "scripted"
    model_name = "scripted"

    def __init__(self, text: str = "", delay: float = 0.0, error: Exception | None = None) -> None:
        self.text, self.delay, self.error, self.calls = text, delay, error, []

    async def start(self) -> None:
        return None

    async def generate(self, prompts: list[str], params: SamplingParams) -> list[Generation]:
        self.calls.append((prompts, params))
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return [Generation(self.text, 10, 5) for _ in prompts]

    async def generate_stream(self, prompt: str, params: SamplingParams) -> AsyncIterator[str]:
        yield TextDelta(self.text, finish_reason="stop")

    async def check_health(self) -> None:
        return None


def write(text: str, action: str = "discount_offer", **kw) -> object:
    writer = EmailWriter(LLMSettings(), ScriptedEngine(text, **kw))
    return asyncio.run(writer.write(FACTS, action, {"churn_probability": 0.7}))


def test_a_good_draft_is_kept_and_gets_the_footer() -> None:
    result = write(format_completion("Ana, 15% off is waiting", GOOD_BODY))
    assert not result.fallback and result.fallback_reason is None
    assert result.subject == "Ana, 15% off is waiting"
    assert result.body.startswith(GOOD_BODY)
    assert result.body.endswith("Unsubscribe: https://example.com/unsubscribe?customer=42")
    assert (result.backend, result.prompt_tokens, result.completion_tokens) == ("scripted", 10, 5)


@pytest.mark.parametrize(
    ("subject", "body", "reason"),
    [
        ("", GOOD_BODY, "empty_subject"),
        ("Ana, 15% off " + "x" * 200, GOOD_BODY, "subject_too_long"),
        ("Ana, 15% off", "Hi Ana.", "body_too_short"),
        ("Ana, 15% off", GOOD_BODY + " more" * 500, "body_too_long"),
        ("{customer_name}, 15% off", GOOD_BODY, "unfilled_placeholder"),
        ("Ana, 15% off", GOOD_BODY + " Regards, [Agent Name]", "unfilled_placeholder"),
        ("Ana, 15% off", GOOD_BODY.replace("Ana", "<NAME>"), "unfilled_placeholder"),
        ("Maya, 15% off", GOOD_BODY.replace("Ana", "Maya"), "missing_customer_name"),
        ("Ana, free shipping", GOOD_BODY.replace("15% off", "free shipping"), "missing_offer"),
    ],
)
def test_each_failure_mode_falls_back_to_the_marked_template(
    subject: str, body: str, reason: str
) -> None:
    result = write(format_completion(subject, body))
    assert result.fallback and result.fallback_reason == reason
    template_subject, template_body = fallback_email(FACTS, "discount_offer")
    assert result.subject == template_subject and result.body.startswith(template_body)
    assert result.body.endswith(footer_text(FACTS, GuardrailConfig()))
    assert (
        check_email(result.subject, template_body, FACTS, "discount_offer", GuardrailConfig())
        is None
    )


def test_slots_are_filled_from_the_facts_before_checking() -> None:
    result = write(
        format_completion(
            "{first_name}, 15% off for {plan_name}",
            "Hi {first_name}, here is 15% off your next order in {region_name}. Enjoy.",
        )
    )
    assert not result.fallback
    assert result.subject == "Ana, 15% off for Plus" and result.body.startswith(
        "Hi Ana, here is 15% off"
    )
    assert "in West" in result.body


@pytest.mark.parametrize(
    "slot", ["{coupon_code}", "{recency_days}"]
)  # unknown slot / no value in the facts
def test_unfillable_slots_fall_back(slot: str) -> None:
    result = write(format_completion("Ana, 15% off", GOOD_BODY + f" Code {slot}."))
    assert result.fallback_reason == "unfilled_placeholder"


def test_name_check_is_on_word_boundaries() -> None:
    draft = format_completion("Anabelle, 15% off", GOOD_BODY.replace("Ana", "Anabelle"))
    assert write(draft).fallback_reason == "missing_customer_name"


@pytest.mark.parametrize(
    "action", ["discount_offer", "free_shipping", "content_digest", "winback_email"]
)
def test_fallback_templates_pass_their_own_checks(action: str) -> None:
    subject, body = fallback_email({"first_name": None}, action)
    assert check_email(subject, body, {}, action, GuardrailConfig()) is None


def test_footer_never_shows_braces_for_missing_fields() -> None:
    assert "{" not in footer_text({}, GuardrailConfig())


def test_no_contact_writes_nothing_and_does_not_call_the_engine() -> None:
    engine = ScriptedEngine("unused")
    results = asyncio.run(
        EmailWriter(LLMSettings(), engine).write_many(
            [EmailRequest(FACTS, "no_contact", {}), EmailRequest(FACTS, "free_shipping", {})]
        )
    )
    assert [r.written for r in results] == [False, True]
    assert results[0].subject == "" and results[0].action == "no_contact"
    assert len(engine.calls) == 1 and len(engine.calls[0][0]) == 1  # one batched call, one prompt


def test_request_overrides_reach_the_engine() -> None:
    engine = ScriptedEngine(format_completion("Ana, 15% off", GOOD_BODY))
    asyncio.run(
        EmailWriter(LLMSettings(), engine).write(
            FACTS, "discount_offer", {}, max_tokens=33, temperature=0.0, stop=["\n\n"]
        )
    )
    params = engine.calls[0][1]
    assert (params.max_tokens, params.temperature) == (33, 0.0)
    assert params.stop == ("<END>", "\n\n")


def test_unknown_action_and_bad_parameters_are_caller_errors() -> None:
    writer = EmailWriter(LLMSettings(), ScriptedEngine("x"))
    with pytest.raises(InvalidRequest):
        asyncio.run(writer.write(FACTS, "teleport", {}))
    with pytest.raises(InvalidRequest):
        asyncio.run(writer.write(FACTS, "discount_offer", {}, temperature=5.0))


def test_slow_engine_times_out() -> None:
    writer = EmailWriter(LLMSettings(), ScriptedEngine("x", delay=1.0))
    with pytest.raises(Timeout):
        asyncio.run(writer.write(FACTS, "discount_offer", {}, timeout_s=0.05))


def test_engine_failure_is_dependency_unavailable() -> None:
    writer = EmailWriter(
        LLMSettings(), ScriptedEngine("x", error=RuntimeError("CUDA out of memory"))
    )
    with pytest.raises(DependencyUnavailable) as err:
        asyncio.run(writer.write(FACTS, "discount_offer", {}))
    assert "scripted" in str(err.value) and "CUDA out of memory" in str(err.value)
