"""What the v1 and OpenAI endpoints do: score, explain, reengage, feedback, completions.

One feature read per request, one model call per model (batched across requests inside
the model service), one bandit call; arrays stay numpy from the feature read to the JSON
encoder (``serving.planes.scores``). No HTTP and no Ray here: the routes parse and encode.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from feature_store.batch import FeatureBatch
from serving import metrics, request_log
from serving.components.api import Bandit, Features, Model, Writer
from serving.components.bandit_answers import Feedback
from serving.components.explain import Part, block
from serving.components.offload import both
from serving.errors import DependencyUnavailable, InvalidRequest, NotFound, OptedOut
from serving.llm.reasons import churn_reasons
from serving.monitoring import Monitor, observation
from serving.planes.lookup import model_named
from serving.planes.scores import (
    Array,
    Explained,
    RowVersions,
    ScoreResult,
    defaulted,
    row_versions,
    scatter,
    score_model,
)
from serving.privacy import ConsentView
from serving.settings import Settings


class InferencePlane:
    """The scoring path and what builds on it (explanations, the email, rewards)."""

    def __init__(
        self,
        settings: Settings,
        features: Features,
        models: dict[str, Model],
        consent: ConsentView,
        bandit: Bandit | None = None,
        writer: Writer | None = None,
        monitor: Monitor | None = None,
    ) -> None:
        self.settings = settings
        self.features = features
        self.models = models
        self.consent = consent
        self.bandit = bandit
        self.writer = writer
        self.monitor = monitor

    # -- /v1/score ------------------------------------------------------------------------
    async def score(
        self, customer_ids: Array, explain: int | None = None, pins: dict[str, str] | None = None
    ) -> ScoreResult:
        """``explain``: add each model's top-``explain`` contributions (by the versions that
        scored).
        ``pins``: role -> version that scores every row, past any traffic policy (debugging
        and QA; the route lets only an admin token pin). Pinned decisions are logged as
        pinned and left out of the rollout evidence."""
        return (await self._score(customer_ids, explain, pins))[0]

    async def _score(
        self,
        customer_ids: Array,
        explain: int | None = None,
        pins: dict[str, str] | None = None,
        forced: str | None = None,
    ) -> tuple[ScoreResult, FeatureBatch]:
        batch = await self.features.lookup(customer_ids)
        found = batch.found
        metrics.scored(found)
        rows = np.flatnonzero(found)
        churn_name, eng_name = self.settings.models.churn, self.settings.models.engagement
        partial = len(rows) < len(found)
        values = batch.values[rows] if partial else batch.values
        ids = customer_ids[rows] if partial else customer_ids
        pins = pins or {}
        # each model assigns rows to versions by its traffic policy (one version without one)
        (churn_v, churn, churn_split), (eng_v, eng, eng_split) = await both(
            len(ids),
            self.settings.models.offload_rows,
            score_model(self._model(churn_name), values, batch.names, ids, pins.get("churn")),
            score_model(self._model(eng_name), values, batch.names, ids, pins.get("engagement")),
        )
        result = ScoreResult(
            customer_ids=customer_ids,
            found=found,
            churn_probability=scatter(churn, rows, len(found)),
            engagement_probability=scatter(eng, rows, len(found)),
            feature_age_s=batch.age_seconds(time.time()),
            features_defaulted=defaulted(batch),
            model_versions={"churn": churn_v, "engagement": eng_v},
            pinned=pins or None,
        )
        request_log.note(customers=len(customer_ids), model_versions=result.model_versions)
        if churn_split is not None or eng_split is not None:
            result.row_versions = row_versions(
                {"churn": churn_split, "engagement": eng_split}, rows, len(found)
            )
        if explain is not None:  # never on the plain scoring path
            result.explanations = await self._explain(
                values, batch.names, rows, result.row_versions or {}, result.model_versions
            )
            result.explain_k = explain
        if self.bandit is not None and self.settings.bandit.enabled:
            await self._decide(self.bandit, result, batch)
        if self.monitor is not None:  # a queue append; the monitor's thread bins the rows
            self.monitor.observe(
                observation(
                    result,
                    values,
                    batch.names,
                    rows if partial else slice(None),
                    forced,
                    self.settings,
                )
            )
        return result, batch

    async def _decide(self, bandit: Bandit, result: ScoreResult, batch: FeatureBatch) -> None:
        result.decisions = await bandit.decide(
            result.customer_ids,
            batch,
            result.churn_probability,
            result.engagement_probability,
            result.found,
            result.log_versions(),
            self.consent.mask(result.customer_ids),
        )

    def _model(self, name: str) -> Model:
        return model_named(self.models, name)

    # -- /v1/explain ----------------------------------------------------------------------
    async def explain(self, customer_ids: Array, top_k: int) -> Explained:
        """Each model's base value and top-k contributions (log-odds) by its default version
        (under a rollout split, ``/v1/score`` with ``explain`` explains each row's own version)."""
        batch = await self.features.lookup(customer_ids)
        rows = np.flatnonzero(batch.found)
        values = batch.values[rows] if len(rows) < len(batch.found) else batch.values
        explained = await self._explain(values, batch.names, rows, {})
        n = len(customer_ids)
        return Explained(
            customer_ids, batch.found, {role: block(p, n, top_k) for role, p in explained.items()}
        )

    async def _explain(
        self,
        values: Array,
        names: tuple[str, ...],
        rows: Array,
        split: RowVersions,
        scored: dict[str, str] | None = None,
    ) -> dict[str, list[Part]]:
        """Both models at once, each row by the version that scored it (``split``: per-row
        version codes in request order; ``scored``: the one version of an unsplit model, which
        under a rollout may be a candidate); a version without an explainer refuses the request."""
        calls, keys = [], []
        for role, name in (
            ("churn", self.settings.models.churn),
            ("engagement", self.settings.models.engagement),
        ):
            codes = split[role][0][rows] if role in split else np.zeros(len(rows), np.int64)
            versions: tuple[str | None, ...] = (
                split[role][1] if role in split else ((scored or {}).get(role),)
            )
            for code in np.unique(codes).tolist() or [0]:
                sel = np.flatnonzero(codes == code)
                calls.append(
                    self._model(name).explain(
                        values[sel] if role in split else values, names, versions[code]
                    )
                )
                keys.append((role, rows[sel]))
        out: dict[str, list[Part]] = {}
        for (role, at), expl in zip(keys, await asyncio.gather(*calls)):
            out.setdefault(role, []).append((expl, at))
        return out

    # -- /v1/reengage ---------------------------------------------------------------------
    async def reengage(
        self,
        customer_id: int,
        action: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        explain: int | None = None,
        adapter: str | None = None,
    ) -> dict[str, Any]:
        """Score one customer, take the bandit's action (or the forced one), write the email;
        with ``explain``, up to that many churn reasons go to the writer and into the answer."""
        writer = self._writer()
        if action is not None and action not in self.settings.bandit.arms:
            raise InvalidRequest(
                f"unknown action; choose from {self.settings.bandit.arms}", field="action"
            )
        control = self.settings.bandit.control_arm
        opted_out = self.consent.is_opted_out(customer_id)
        if opted_out and action is not None and action != control:
            raise OptedOut(
                f"the customer opted out of contact: only {control!r} may be forced", field="action"
            )
        result, batch = await self._score(
            np.array([customer_id], dtype=np.int64), explain, forced=action
        )
        if not bool(result.found[0]):
            raise NotFound(f"customer {customer_id} has no features online", field="customer_id")
        answer = result.first_row()
        answer["customer_id"] = customer_id
        if opted_out:  # no contact details are read for an opted-out customer
            if result.decisions is None:  # without the bandit, the answer says why no contact
                answer.update(action=control, reason="opted_out")
            email = await writer.write(
                {"customer_id": customer_id}, control, {}, max_tokens, temperature
            )
            return {**answer, "subject": None, "body": None, "llm": _llm_info(email)}
        if action is not None:  # forced: the bandit's decision id no longer describes what was sent
            answer.update(action=action, decision_id=None, propensity=None, reason="forced")
        chosen = answer["action"] or "no_contact"
        facts = {
            "customer_id": customer_id,
            **dict(zip(batch.names, batch.values[0].tolist())),
            **(await self.features.contact(customer_id)),
        }
        scores: dict[str, Any] = {
            "churn_probability": answer["churn_probability"],
            "engagement_probability": answer["engagement_probability"],
        }
        if explain is not None and result.explanations:
            churn = result.explanations["churn"][0][0]
            answer["reasons"] = churn_reasons(
                churn.features, churn.contributions[0], facts, explain
            )
            # the writer's prompt takes the phrases (serving.llm.prompts.reason_lines)
            scores["reasons"] = [r["phrase"] for r in answer["reasons"]]
        email = await writer.write(facts, chosen, scores, max_tokens, temperature, adapter)
        answer.update(
            subject=email["subject"] if email["written"] else None,
            body=email["body"] if email["written"] else None,
            llm=_llm_info(email),
        )
        return answer

    # -- OpenAI completions -----------------------------------------------------------------
    def _writer(self) -> Writer:
        if self.writer is None or not self.settings.llm.enabled:
            raise DependencyUnavailable("the email writer (LLM) is disabled on this server")
        return self.writer

    async def completions(self, request: Any) -> Any:
        return await self._writer().complete(request)

    def completions_stream(self, request: Any) -> AsyncIterator[str]:
        return self._writer().complete_stream(request)

    async def llm_models(self) -> Any:
        return await self._writer().models()

    # -- /v1/feedback ---------------------------------------------------------------------
    async def feedback(self, decision_id: str, reward: float) -> Feedback:
        if self.bandit is None or not self.settings.bandit.enabled:
            raise DependencyUnavailable(
                "the bandit router is disabled on this server (bandit.enabled=false)"
            )
        return await self.bandit.feedback(decision_id, float(reward))


def _llm_info(email: dict[str, Any]) -> dict[str, Any]:
    """The answer's ``llm`` block: which backend wrote the email, or why a template did."""
    return {
        "backend": email["backend"],
        "model": email["model"],
        "fallback": email["fallback"],
        "fallback_reason": email["fallback_reason"],
        "written": email["written"],
        "completion_tokens": email["completion_tokens"],
        "adapter": email.get("adapter"),
    }
