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

from serving import audit, metrics, request_log
from serving.errors import (
    DependencyUnavailable,
    InvalidRequest,
    ModelNotFound,
    NotFound,
    OptedOut,
    ReengageError,
)
from serving.settings import Settings
from serving.security import ANONYMOUS
from serving.bandit.router import Decisions
from serving.bandit.state.records import REASONS
from serving.codecs.binary import validate_inputs
from serving.codecs.columnar import RowIds, Vocabulary
from serving.protocol.v2 import MetadataTensor
from serving.components.api import Bandit, Features, Model, Writer
from serving.components.explain import Part, block
from serving.components.offload import both
from serving.components.traffic_policy import row_token
from serving.components.privacy import PrivacyService
from serving.llm.reasons import churn_reasons
from serving.privacy import ConsentView, consent_view
from serving.monitoring import Monitor, observation, window_report
from serving.planes.rollouts import Rollouts

SERVER_NAME = "reengage"
SERVER_VERSION = "0.1.0"
V2_EXTENSIONS = ["binary_tensor_data", "model_repository"]


@dataclass
class ScoreResult:
    """Columnar answer for N customers, request order (docs/api.md, POST /v1/score)."""

    customer_ids: np.ndarray
    found: np.ndarray
    churn_probability: np.ndarray  # float32, NaN where not found
    engagement_probability: np.ndarray
    feature_age_s: np.ndarray  # float64, NaN where not found
    features_defaulted: np.ndarray
    model_versions: dict[str, str]
    decisions: Decisions | None = None
    explanations: dict[str, list[Part]] | None = (
        None  # by role: one part per version; only with explain
    )
    explain_k: int = 0
    pinned: dict[str, str] | None = None  # role -> version a version pin asked for
    # by role, when a traffic policy split the rows: (version code per row, -1 not found;
    # the versions; the row token the decision log keeps: components.traffic_policy.row_token)
    row_versions: dict[str, tuple[np.ndarray, tuple[str, ...], str]] | None = None

    def log_versions(self) -> dict[str, str]:
        """``model_versions`` for the decision log: with a split, each model's row token too,
        from which ``components.evidence`` recovers every row's version; with a pin, which
        roles were pinned (left out of the evidence)."""
        pinned = {f"pinned.{role}": v for role, v in (self.pinned or {}).items()}
        if not self.row_versions:
            return {**self.model_versions, **pinned} if pinned else self.model_versions
        return {
            **self.model_versions,
            **pinned,
            **{f"rollout.{role}": t for role, (_, _, t) in self.row_versions.items()},
        }

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
            "decision_id": RowIds(d.batch_id, d.has_decision)
            if d
            else RowIds("", np.zeros(n, bool)),
            "propensity": d.propensity if d else np.full(n, np.nan),
            "reason": Vocabulary(d.reason_code, REASONS) if d else Vocabulary(none, ()),
            "feature_age_s": self.feature_age_s,
            "features_defaulted": self.features_defaulted,
            "model_versions": self.model_versions,
            **({"pinned": self.pinned} if self.pinned else {}),
            **(
                {"explanations": self.explanation_blocks()} if self.explanations is not None else {}
            ),
            **(
                {
                    f"{role}_version": Vocabulary(codes, versions)
                    for role, (codes, versions, _) in self.row_versions.items()
                }
                if self.row_versions
                else {}
            ),
        }

    def explanation_blocks(self) -> dict[str, Any]:
        """One columnar block per model (``components.explain.block``), request order."""
        n = len(self.customer_ids)
        return {
            role: block(parts, n, self.explain_k)
            for role, parts in (self.explanations or {}).items()
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
        *,
        consent: ConsentView | None = None,
        monitor: Monitor | None = None,
    ) -> None:
        self.settings = settings
        self.features = features
        self.models = models
        self.bandit = bandit
        self.writer = writer
        self.rollouts = Rollouts(settings, features, models, bandit)  # the rollout admin calls
        # who opted out: an in-memory array every replica keeps current (serving.privacy)
        self.consent = consent if consent is not None else consent_view(settings)
        self.privacy = PrivacyService(settings, features, bandit)
        self.monitor = monitor

    async def close(self) -> None:
        """Graceful stop: what the components still hold (the bandit's queued decision log)
        is written before the process goes."""
        if self.bandit is not None:
            await self.bandit.close()
        if self.monitor is not None:
            await asyncio.to_thread(self.monitor.close)

    # -- /v1/score ------------------------------------------------------------------------
    async def score(
        self,
        customer_ids: np.ndarray,
        explain: int | None = None,
        pins: dict[str, str] | None = None,
    ) -> ScoreResult:
        """``explain``: add each model's top-``explain`` contributions (by the versions that scored).
        ``pins``: role -> version that scores every row, past any traffic policy (debugging
        and QA; the route lets only an admin token pin). Pinned decisions are logged as
        pinned and left out of the rollout evidence."""
        return (await self._score(customer_ids, explain, pins))[0]

    async def _score(
        self,
        customer_ids: np.ndarray,
        explain: int | None = None,
        pins: dict[str, str] | None = None,
        forced: str | None = None,
    ) -> tuple[ScoreResult, Any]:
        batch = await self.features.lookup(customer_ids)
        found = batch.found
        metrics.scored(found)
        rows = np.flatnonzero(found)
        churn_name, eng_name = self.settings.models.churn, self.settings.models.engagement
        partial = len(rows) < len(found)
        values = batch.values[rows] if partial else batch.values
        ids = customer_ids[rows] if partial else customer_ids
        # each model assigns rows to versions by its traffic policy (one version without one)
        (churn_v, churn, churn_split), (eng_v, eng, eng_split) = await both(
            len(ids),
            self.settings.models.offload_rows,
            _score_model(
                self._model(churn_name), values, batch.names, ids, (pins or {}).get("churn")
            ),
            _score_model(
                self._model(eng_name), values, batch.names, ids, (pins or {}).get("engagement")
            ),
        )
        result = ScoreResult(
            customer_ids=customer_ids,
            found=found,
            churn_probability=_scatter(churn, rows, len(found)),
            engagement_probability=_scatter(eng, rows, len(found)),
            feature_age_s=batch.age_seconds(time.time()),
            features_defaulted=_defaulted(batch),
            model_versions={"churn": churn_v, "engagement": eng_v},
            pinned=pins or None,
        )
        request_log.note(customers=len(customer_ids), model_versions=result.model_versions)
        if churn_split is not None or eng_split is not None:
            result.row_versions = _row_versions(
                {"churn": churn_split, "engagement": eng_split}, rows, len(found)
            )
        if explain is not None:  # never on the plain scoring path
            result.explanations = await self._explain(
                values, batch.names, rows, result.row_versions or {}, result.model_versions
            )
            result.explain_k = explain
        if self.bandit is not None and self.settings.bandit.enabled:
            await self._decide(result, batch)
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

    async def monitor_report(self, since: float | None, window_s: int | None) -> dict[str, Any]:
        """``/v1/monitor``: every replica's counts in the window against the references."""
        if self.monitor is None:
            raise DependencyUnavailable(
                "model monitoring is off on this server (monitor.enabled=false)"
            )
        return await window_report(self.monitor, self.settings.monitor, since, window_s)

    async def _decide(self, result: ScoreResult, batch: Any) -> None:
        result.decisions = await self.bandit.decide(
            result.customer_ids,
            batch,
            result.churn_probability,
            result.engagement_probability,
            result.found,
            result.log_versions(),
            self.consent.mask(result.customer_ids),
        )

    # -- /v1/explain ----------------------------------------------------------------------
    async def explain(self, customer_ids: np.ndarray, top_k: int) -> dict[str, Any]:
        """Each model's base value and top-k contributions (log-odds) by its default version
        (under a rollout split, ``/v1/score`` with ``explain`` explains each row's own version)."""
        batch = await self.features.lookup(customer_ids)
        rows = np.flatnonzero(batch.found)
        values = batch.values[rows] if len(rows) < len(batch.found) else batch.values
        explained = await self._explain(values, batch.names, rows, {})
        n = len(customer_ids)
        return {
            "customer_ids": customer_ids,
            "found": batch.found,
            **{role: block(parts, n, top_k) for role, parts in explained.items()},
        }

    async def _explain(
        self,
        values: np.ndarray,
        names: tuple[str, ...],
        rows: np.ndarray,
        split: dict[str, tuple[np.ndarray, tuple[str, ...], str]],
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

    def _model(self, name: str) -> Model:
        service = self.models.get(name)
        if service is None:
            raise ModelNotFound(f"model '{name}' is not in the repository", field="model_name")
        return service

    # -- /v1/reengage -------------------------------------------------------------------
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
        if self.writer is None or not self.settings.llm.enabled:
            raise DependencyUnavailable("the email writer (LLM) is disabled on this server")
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
        if opted_out:  # the bandit already decided no contact; without the bandit, say so; no contact details read
            if result.decisions is None:
                answer.update(action=control, reason="opted_out")
            email = await self.writer.write(
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
        scores = {
            "churn_probability": answer["churn_probability"],
            "engagement_probability": answer["engagement_probability"],
        }
        if explain is not None and result.explanations:
            churn = result.explanations["churn"][0][0]
            answer["reasons"] = churn_reasons(
                churn.features, churn.contributions[0], facts, explain
            )
            scores["reasons"] = [
                r["phrase"] for r in answer["reasons"]
            ]  # serving.llm.prompts.reason_lines
        email = await self.writer.write(facts, chosen, scores, max_tokens, temperature, adapter)
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

    def completions_stream(self, request: Any) -> Any:
        return self._writer().complete_stream(request)

    async def llm_models(self) -> Any:
        return await self._writer().models()

    # -- /v1/feedback ---------------------------------------------------------------------
    async def feedback(self, decision_id: str, reward: float) -> dict[str, Any]:
        if self.bandit is None or not self.settings.bandit.enabled:
            raise DependencyUnavailable(
                "the bandit router is disabled on this server (bandit.enabled=false)"
            )
        return await self.bandit.feedback(decision_id, float(reward))

    # -- consent and erasure (serving.components.privacy) ------------------------------------
    async def set_consent(
        self, customer_id: int, opted_out: bool, channel: str = "all"
    ) -> dict[str, Any]:
        return await self.privacy.set_consent(customer_id, opted_out, channel)

    async def get_consent(self, customer_id: int) -> dict[str, Any]:
        return await self.privacy.get_consent(customer_id)

    async def erase_customer(self, customer_id: int, actor: str = ANONYMOUS) -> dict[str, Any]:
        return await self.privacy.erase(customer_id, actor)

    # -- KServe v2 --------------------------------------------------------------------------
    def server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": V2_EXTENSIONS}

    async def ready(self) -> bool:
        """Every model loaded, the online store answering with every view, and the bandit's
        state store taking writes (cached checks, none of them a round trip)."""
        checks = [m.ready() for m in self.models.values()]
        for component in (self.features, self.bandit, self.consent):
            component_ready = getattr(component, "ready", None)
            if component_ready is not None:
                checks.append(component_ready())
        states = await asyncio.gather(*checks, return_exceptions=True)
        return bool(self.models) and all(s is True for s in states)

    async def model_metadata(self, name: str, version: str | None) -> dict[str, Any]:
        meta = await self._model(name).metadata(version)
        served = meta["parameters"]["version"]
        if (
            self.settings.models.repo_path / name / served / "card.md"
        ).is_file():  # written by the build
            meta["parameters"]["model_card"] = f"/v2/models/{name}/versions/{served}/card"
        return meta

    async def model_card(self, name: str, version: str) -> str:
        """The version's ``card.md`` (Markdown, written by the build)."""
        await self._model(name).metadata(version)  # an unknown model or version is a 404
        path = self.settings.models.repo_path / name / version / "card.md"
        try:
            return await asyncio.to_thread(path.read_text)
        except OSError:
            raise NotFound(
                f"model '{name}' version {version} has no model card", field="model_version"
            ) from None

    async def model_ready(self, name: str, version: str | None) -> bool:
        """False for a version not (yet) ready; an unknown model is a 404 (ModelNotFound)."""
        model = self._model(name)
        try:
            return bool(await model.ready(version))
        except ReengageError:
            return False

    async def infer(
        self, name: str, version: str | None, inputs: dict[str, np.ndarray]
    ) -> tuple[str, dict[str, np.ndarray]]:
        """Inputs checked against the model's metadata (names, datatype, shape) for every
        transport, then run (dynamically batched)."""
        model = self._model(name)
        specs = await model.input_specs(version)
        validate_inputs(
            inputs,
            [MetadataTensor(name=s.name, datatype=s.datatype, shape=list(s.shape)) for s in specs],
        )
        used, outputs = await model.infer(inputs, version)
        request_log.note(model_versions={name: used})
        return used, outputs

    async def repository_index(self, ready_only: bool = False) -> list[dict[str, str]]:
        rows: list[dict[str, str]] = []
        for service in self.models.values():
            rows.extend(await service.index())
        return [r for r in rows if r["state"] == "READY"] if ready_only else rows

    async def load_model(self, name: str, actor: str = ANONYMOUS) -> list[str]:
        """Admin: (re)load every version of ``name``; audited with the caller's token name."""
        async with audit.action(self.settings, "repository.load", actor=actor, model=name) as entry:
            versions = await self._model(name).load()
            entry["details"]["versions"] = list(versions)
        return versions

    async def unload_model(self, name: str, actor: str = ANONYMOUS) -> None:
        async with audit.action(self.settings, "repository.unload", actor=actor, model=name):
            await self._model(name).unload()


async def _score_model(
    model: Model, values: np.ndarray, names: tuple[str, ...], ids: np.ndarray, pinned: str | None
) -> tuple[str, np.ndarray, Any]:
    """A model's scores under its traffic policy, or all by the ``pinned`` version."""
    if pinned is None:
        return await model.score_rows(values, names, ids)
    version, scores = await model.score(values, names, pinned)
    return version, scores, None


def _llm_info(email: dict[str, Any]) -> dict[str, Any]:
    return {
        "backend": email["backend"],
        "model": email["model"],
        "fallback": email["fallback"],
        "fallback_reason": email["fallback_reason"],
        "written": email["written"],
        "completion_tokens": email["completion_tokens"],
        "adapter": email.get("adapter"),
    }


def parse_ids(raw: list[int]) -> np.ndarray:
    """Validated ids (ScoreRequest bounds them) as the int64 array the services take."""
    return np.asarray(raw, dtype=np.int64)


def _scatter(values: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    if len(rows) == n:
        return values.astype(np.float32, copy=False)
    out = np.full(n, np.nan, dtype=np.float32)
    out[rows] = values
    return out


def _row_versions(
    splits: dict[str, Any], rows: np.ndarray, n: int
) -> dict[str, tuple[np.ndarray, tuple[str, ...], str]]:
    """Per-row version codes in request order (-1 where the customer was not found), and
    the decision log's token of them (``components.traffic_policy.row_token``)."""
    out = {}
    for role, split in splits.items():
        if split is not None:
            codes, versions, _ = split
            full = np.full(n, -1, dtype=np.int64)
            full[rows] = codes
            out[role] = (full, versions, row_token(full, versions))
    return out


def _defaulted(batch: Any) -> np.ndarray:
    if batch.view_found is None:
        return np.zeros(len(batch), dtype=bool)
    return batch.found & ~batch.view_found.all(axis=1)
