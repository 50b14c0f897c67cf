"""The email writer: prompt, generate, check, fall back; plus OpenAI completions.

No HTTP and no Ray here: the writer deployment wraps an ``EmailWriter`` and the routes
translate its pydantic answers. Every engine call has a deadline (``Timeout``) and any
backend failure surfaces as ``DependencyUnavailable`` naming the backend, so the
ingress answers 504 / 503 instead of a bare 500.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from serving.errors import (
    DependencyUnavailable,
    InvalidRequest,
    ModelNotFound,
    ReengageError,
    Timeout,
)
from serving.llm.backends import make_engine
from serving.llm.engine import Generation, LLMEngine, SamplingParams
from serving.llm.guardrails import GuardrailConfig, add_footer, check_email, fallback_email
from serving.llm.prompts import (
    NO_EMAIL_ACTIONS,
    STOP,
    action_spec,
    build_prompt,
    fill_slots,
    parse_completion,
)
from serving.protocol.openai import (
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
    CompletionStreamResponse,
    CompletionUsage,
    ModelCard,
    ModelList,
    completion_id,
)
from serving.settings import LLMSettings

T = TypeVar("T")


@dataclass(frozen=True)
class EmailResult:
    """A written email. ``written`` is False for actions that send nothing (no_contact)."""

    subject: str
    body: str
    fallback: bool
    fallback_reason: str | None
    backend: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    action: str = ""
    written: bool = True
    adapter: str | None = None  # the LoRA adapter (brand voice) that wrote it; None: the base model

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EmailRequest:
    """One customer's inputs for ``write_many``."""

    facts: Mapping[str, Any]
    action: str
    scores: Mapping[str, Any]


class EmailWriter:
    def __init__(self, settings: LLMSettings, engine: LLMEngine | None = None) -> None:
        self.settings = settings
        self.engine = engine if engine is not None else make_engine(settings)
        self.guard = GuardrailConfig.from_settings(settings)

    @property
    def backend(self) -> str:
        return self.engine.backend

    @property
    def model(self) -> str:
        return self.engine.model_name or self.settings.served_model_name

    async def start(self) -> None:
        await self._call(self.engine.start(), max(self.settings.timeout_s, 300.0), "start")

    async def check_health(self) -> None:
        await self._call(self.engine.check_health(), self.settings.timeout_s, "health check")

    # -- emails ---------------------------------------------------------------------------
    async def write(
        self,
        facts: Mapping[str, Any],
        action: str,
        scores: Mapping[str, Any],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: list[str] | None = None,
        timeout_s: float | None = None,
        lora: str | None = None,
    ) -> EmailResult:
        """The email for one customer and the bandit's action (see ``write_many``)."""
        [result] = await self.write_many(
            [EmailRequest(facts, action, scores)],
            max_tokens=max_tokens,
            temperature=temperature,
            stop=stop,
            timeout_s=timeout_s,
            lora=lora,
        )
        return result

    async def write_many(
        self,
        requests: list[EmailRequest],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: list[str] | None = None,
        timeout_s: float | None = None,
        lora: str | None = None,
    ) -> list[EmailResult]:
        """Emails for several customers in one engine call.

        Drafts failing a guardrail are replaced by the template with ``fallback=True``;
        the unsubscribe footer is appended to every body. ``lora`` names one of the
        engine's adapters (a brand voice, as ``/v1/models`` lists them); None: the base model.
        """
        if lora is not None and lora not in self.engine.adapters:
            raise InvalidRequest(
                f"unknown adapter {lora!r}; this server has {list(self.engine.adapters)}",
                field="adapter",
            )
        for r in requests:
            if r.action not in NO_EMAIL_ACTIONS:
                action_spec(r.action)  # unknown action: InvalidRequest before any generation
        todo = [i for i, r in enumerate(requests) if r.action not in NO_EMAIL_ACTIONS]
        params = self._params(max_tokens, temperature, [*STOP, *(stop or [])], lora=lora)
        prompts = [
            build_prompt(requests[i].facts, requests[i].action, requests[i].scores) for i in todo
        ]
        gens = await self._generate(prompts, params, timeout_s) if prompts else []
        results: list[EmailResult] = [self._not_written(r) for r in requests]
        for i, gen in zip(todo, gens):
            results[i] = self._finish(requests[i], gen, lora)
        return results

    def _finish(
        self, req: EmailRequest, gen: Generation, adapter: str | None = None
    ) -> EmailResult:
        subject, body = parse_completion(fill_slots(gen.text, {**req.scores, **req.facts}))
        reason = check_email(subject, body, req.facts, req.action, self.guard)
        if reason is not None:
            subject, body = fallback_email(req.facts, req.action)
        return EmailResult(
            subject,
            add_footer(body, req.facts, self.guard),
            reason is not None,
            reason,
            self.backend,
            self.model,
            gen.prompt_tokens,
            gen.completion_tokens,
            req.action,
            adapter=adapter,
        )

    def _not_written(self, req: EmailRequest) -> EmailResult:
        return EmailResult(
            "", "", False, None, self.backend, self.model, action=req.action, written=False
        )

    # -- OpenAI completions ---------------------------------------------------------------
    def models(self) -> ModelList:
        names = [self.settings.served_model_name, *self.engine.adapters]
        return ModelList(data=[ModelCard(id=n) for n in names])

    async def complete(self, req: CompletionRequest) -> CompletionResponse:
        params = self._request_params(req)
        gens = await self._generate(req.prompts, params, None)
        choices = [
            CompletionChoice(index=i, text=g.text, finish_reason=g.finish_reason)
            for i, g in enumerate(gens)
        ]
        prompt_tokens = sum(g.prompt_tokens for g in gens)
        completion_tokens = sum(g.completion_tokens for g in gens)
        return CompletionResponse(
            model=req.model,
            choices=choices,
            usage=CompletionUsage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            ),
        )

    async def complete_stream(
        self, req: CompletionRequest
    ) -> AsyncIterator[CompletionStreamResponse]:
        """Chunks in the OpenAI stream format; prompts of a list stream one after another."""
        params = self._request_params(req)
        cid, prompt_tokens, completion_tokens = completion_id(), 0, 0
        deadline = asyncio.get_running_loop().time() + self.settings.timeout_s
        for index, prompt in enumerate(req.prompts):
            stream = self.engine.generate_stream(prompt, params).__aiter__()
            while True:
                remaining = deadline - asyncio.get_running_loop().time()
                try:
                    delta = await self._call(stream.__anext__(), remaining, "stream")
                except StopAsyncIteration:
                    break
                finish = getattr(delta, "finish_reason", None)
                prompt_tokens += getattr(delta, "prompt_tokens", None) or 0
                completion_tokens += getattr(delta, "completion_tokens", None) or 0
                if delta or finish:
                    yield CompletionStreamResponse(
                        id=cid,
                        model=req.model,
                        choices=[
                            CompletionChoice(index=index, text=str(delta), finish_reason=finish)
                        ],
                    )
        if req.stream_options is not None and req.stream_options.include_usage:
            yield CompletionStreamResponse(
                id=cid,
                model=req.model,
                choices=[],
                usage=CompletionUsage(
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                    total_tokens=prompt_tokens + completion_tokens,
                ),
            )

    def _request_params(self, req: CompletionRequest) -> SamplingParams:
        if req.n != 1:
            raise InvalidRequest("only n=1 is supported", field="n")
        lora = None
        if req.model != self.settings.served_model_name:
            if req.model not in self.engine.adapters:
                raise ModelNotFound(
                    f"unknown model {req.model!r}; this server has "
                    f"{[c.id for c in self.models().data]}",
                    field="model",
                )
            lora = req.model
        return self._params(
            req.max_tokens,
            req.temperature,
            req.stop_list,
            top_p=req.top_p,
            seed=req.seed,
            lora=lora,
        )

    # -- plumbing -------------------------------------------------------------------------
    def _params(
        self,
        max_tokens: int | None,
        temperature: float | None,
        stop: list[str],
        *,
        top_p: float | None = None,
        seed: int | None = None,
        lora: str | None = None,
    ) -> SamplingParams:
        s = self.settings
        max_tokens = s.max_tokens if max_tokens is None else max_tokens
        temperature = s.temperature if temperature is None else temperature
        if max_tokens < 1:
            raise InvalidRequest("max_tokens must be at least 1", field="max_tokens")
        if not 0 <= temperature <= 2:
            raise InvalidRequest("temperature must be within [0, 2]", field="temperature")
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=s.top_p if top_p is None else top_p,
            stop=tuple(dict.fromkeys(x for x in stop if x)),
            seed=seed,
            lora=lora,
        )

    async def _generate(
        self, prompts: list[str], params: SamplingParams, timeout_s: float | None
    ) -> list[Generation]:
        timeout = self.settings.timeout_s if timeout_s is None else timeout_s
        gens = await self._call(self.engine.generate(prompts, params), timeout, "generation")
        if len(gens) != len(prompts):
            raise DependencyUnavailable(
                f"the {self.backend} backend returned {len(gens)} answers for {len(prompts)}"
            )
        return gens

    async def _call(self, awaitable: Awaitable[T], timeout: float, what: str) -> T:
        """Await with a deadline; map failures to ``Timeout`` / ``DependencyUnavailable``."""
        try:
            return await asyncio.wait_for(awaitable, max(timeout, 0.0))
        except TimeoutError:
            raise Timeout(
                f"LLM {what} took longer than {timeout:.1f} s ({self.backend} backend)"
            ) from None
        except (ReengageError, StopAsyncIteration):
            raise
        except Exception as exc:
            raise DependencyUnavailable(
                f"LLM {what} failed on the {self.backend} backend: {type(exc).__name__}: {exc}"
            ) from exc
