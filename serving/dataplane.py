"""What the endpoints do, with no HTTP and no Ray in sight.

Routes parse and format; this module composes the services: one feature read per
request, one model call per model (batched across requests inside the model service),
one bandit call. Arrays stay numpy from the feature read to the JSON encoder.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving import metrics
from serving.errors import DependencyUnavailable, InvalidRequest, ModelNotFound, NotFound, ReengageError
from serving.settings import Settings
from serving.bandit.router import Decisions
from serving.bandit.state.records import REASONS
from serving.codecs.binary import validate_inputs
from serving.codecs.columnar import RowIds, Vocabulary
from serving.protocol.v2 import MetadataTensor
from serving.components.api import Bandit, Features, Model, Writer

SERVER_NAME = "reengage"
SERVER_VERSION = "0.1.0"
V2_EXTENSIONS = ["binary_tensor_data", "model_repository"]


@dataclass
class ScoreResult:
    """Columnar answer for N customers, request order (DESIGN.md /v1/score)."""

    customer_ids: np.ndarray
    found: np.ndarray
    churn_probability: np.ndarray  # float32, NaN where not found
    engagement_probability: np.ndarray
    feature_age_s: np.ndarray  # float64, NaN where not found
    features_defaulted: np.ndarray
    model_versions: dict[str, str]
    decisions: Decisions | None = None

    def columns(self) -> dict[str, Any]:
        """The answer's columns for ``codecs.columnar``: numpy arrays, and string columns as
        codes (actions, reasons) or row ids (decision ids): no Python object per row."""
        n = len(self.customer_ids)
        d = self.decisions
        none = np.full(n, -1, dtype=np.int64)
        return {
            "customer_ids": self.customer_ids,
            "found": self.found,
            "churn_probability": self.churn_probability,
            "engagement_probability": self.engagement_probability,
            "action": Vocabulary(d.arm_index, d.arms) if d else Vocabulary(none, ()),
            "decision_id": RowIds(d.batch_id, d.has_decision) if d else RowIds("", np.zeros(n, bool)),
            "propensity": d.propensity if d else np.full(n, np.nan),
            "reason": Vocabulary(d.reason_code, REASONS) if d else Vocabulary(none, ()),
            "feature_age_s": self.feature_age_s,
            "features_defaulted": self.features_defaulted,
            "model_versions": self.model_versions,
        }

    def first_row(self) -> dict[str, Any]:
        """Row 0 as JSON scalars (NaN -> None): the one-customer answers."""
        d = self.decisions

        def number(column: np.ndarray) -> float | None:
            value = float(column[0])
            return None if np.isnan(value) else value

        return {
            "found": bool(self.found[0]),
            "churn_probability": number(self.churn_probability),
            "engagement_probability": number(self.engagement_probability),
            "action": d.action[0] if d else None,
            "decision_id": d.decision_id[0] if d else None,
            "propensity": number(d.propensity) if d else None,
            "reason": d.reason[0] if d else None,
            "feature_age_s": number(self.feature_age_s),
            "model_versions": self.model_versions,
        }


class DataPlane:
    def __init__(
        self,
        settings: Settings,
        features: Features,
        models: dict[str, Model],
        bandit: Bandit | None = None,
        writer: Writer | None = None,
    ) -> None:
        self.settings = settings
        self.features = features
        self.models = models
        self.bandit = bandit
        self.writer = writer

    async def close(self) -> None:
        """Graceful stop: what the components still hold (the bandit's queued decision log)
        is written before the process goes."""
        if self.bandit is not None:
            await self.bandit.close()

    # -- /v1/score ------------------------------------------------------------------------
    async def score(self, customer_ids: np.ndarray) -> ScoreResult:
        return (await self._score(customer_ids))[0]

    async def _score(self, customer_ids: np.ndarray) -> tuple[ScoreResult, Any]:
        batch = await self.features.lookup(customer_ids)
        found = batch.found
        metrics.scored(found)
        rows = np.flatnonzero(found)
        churn_name, eng_name = self.settings.models.churn, self.settings.models.engagement
        values = batch.values[rows] if len(rows) < len(found) else batch.values
        (churn_v, churn), (eng_v, eng) = await asyncio.gather(
            self._model(churn_name).score(values, batch.names),
            self._model(eng_name).score(values, batch.names),
        )
        result = ScoreResult(
            customer_ids=customer_ids,
            found=found,
            churn_probability=_scatter(churn, rows, len(found)),
            engagement_probability=_scatter(eng, rows, len(found)),
            feature_age_s=batch.age_seconds(time.time()),
            features_defaulted=_defaulted(batch),
            model_versions={"churn": churn_v, "engagement": eng_v},
        )
        if self.bandit is not None and self.settings.bandit.enabled:
            await self._decide(result, batch)
        return result, batch

    async def _decide(self, result: ScoreResult, batch: Any) -> None:
        result.decisions = await self.bandit.decide(
            result.customer_ids, batch, result.churn_probability, result.engagement_probability,
            result.found, result.model_versions,
        )

    def _model(self, name: str) -> Model:
        service = self.models.get(name)
        if service is None:
            raise ModelNotFound(f"model '{name}' is not in the repository", field="model_name")
        return service

    # -- /v1/reengage -------------------------------------------------------------------
    async def reengage(self, customer_id: int, action: str | None = None, max_tokens: int | None = None,
                       temperature: float | None = None) -> dict[str, Any]:
        """Score one customer, take the bandit's action (or the forced one), write the email."""
        if self.writer is None or not self.settings.llm.enabled:
            raise DependencyUnavailable("the email writer (LLM) is disabled on this server")
        if action is not None and action not in self.settings.bandit.arms:
            raise InvalidRequest(f"unknown action; choose from {self.settings.bandit.arms}", field="action")
        result, batch = await self._score(np.array([customer_id], dtype=np.int64))
        if not bool(result.found[0]):
            raise NotFound(f"customer {customer_id} has no features online", field="customer_id")
        answer = result.first_row()
        answer["customer_id"] = customer_id
        if action is not None:  # forced: the bandit's decision id no longer describes what was sent
            answer.update(action=action, decision_id=None, propensity=None, reason="forced")
        chosen = answer["action"] or "no_contact"
        facts = {"customer_id": customer_id, **dict(zip(batch.names, batch.values[0].tolist())),
                 **(await self.features.contact(customer_id))}
        scores = {"churn_probability": answer["churn_probability"], "engagement_probability": answer["engagement_probability"]}
        email = await self.writer.write(facts, chosen, scores, max_tokens, temperature)
        answer.update(
            subject=email["subject"] if email["written"] else None,
            body=email["body"] if email["written"] else None,
            llm={"backend": email["backend"], "model": email["model"], "fallback": email["fallback"],
                 "fallback_reason": email["fallback_reason"], "written": email["written"],
                 "completion_tokens": email["completion_tokens"]},
        )
        return answer

    # -- OpenAI completions -----------------------------------------------------------------
    def _writer(self) -> Writer:
        if self.writer is None or not self.settings.llm.enabled:
            raise DependencyUnavailable("the email writer (LLM) is disabled on this server")
        return self.writer

    async def completions(self, request: Any) -> Any:
        return await self._writer().complete(request)

    def completions_stream(self, request: Any) -> Any:
        return self._writer().complete_stream(request)

    async def llm_models(self) -> Any:
        return await self._writer().models()

    # -- /v1/feedback ---------------------------------------------------------------------
    async def feedback(self, decision_id: str, reward: float) -> dict[str, Any]:
        if self.bandit is None or not self.settings.bandit.enabled:
            raise DependencyUnavailable("the bandit router is disabled on this server (bandit.enabled=false)")
        return await self.bandit.feedback(decision_id, float(reward))

    # -- KServe v2 --------------------------------------------------------------------------
    def server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": V2_EXTENSIONS}

    async def ready(self) -> bool:
        states = await asyncio.gather(*(m.ready() for m in self.models.values()), return_exceptions=True)
        return bool(states) and all(s is True for s in states)

    async def model_metadata(self, name: str, version: str | None) -> dict[str, Any]:
        return await self._model(name).metadata(version)

    async def model_ready(self, name: str, version: str | None) -> bool:
        try:
            return bool(await self._model(name).ready(version))
        except ReengageError:
            return False

    async def infer(self, name: str, version: str | None, inputs: dict[str, np.ndarray]) -> tuple[str, dict[str, np.ndarray]]:
        """Inputs checked against the model's metadata (names, datatype, shape) for every
        transport, then run (dynamically batched)."""
        model = self._model(name)
        specs = await model.input_specs(version)
        validate_inputs(inputs, [MetadataTensor(name=s.name, datatype=s.datatype, shape=list(s.shape)) for s in specs])
        return await model.infer(inputs, version)

    async def repository_index(self, ready_only: bool = False) -> list[dict[str, str]]:
        rows: list[dict[str, str]] = []
        for service in self.models.values():
            rows.extend(await service.index())
        return [r for r in rows if r["state"] == "READY"] if ready_only else rows

    async def load_model(self, name: str) -> list[str]:
        return await self._model(name).load()

    async def unload_model(self, name: str) -> None:
        await self._model(name).unload()


def parse_ids(raw: list[int]) -> np.ndarray:
    """Validated ids (ScoreRequest bounds them) as the int64 array the services take."""
    return np.asarray(raw, dtype=np.int64)


def _scatter(values: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    if len(rows) == n:
        return values.astype(np.float32, copy=False)
    out = np.full(n, np.nan, dtype=np.float32)
    out[rows] = values
    return out


def _defaulted(batch: Any) -> np.ndarray:
    if batch.view_found is None:
        return np.zeros(len(batch), dtype=bool)
    return batch.found & ~batch.view_found.all(axis=1)
