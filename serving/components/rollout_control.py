"""Rollout control of one model: validate versions, publish a traffic policy, wait for
every replica, promote, roll back, unload one version, report.

``ModelService`` (``components.models``) owns one ``RolloutControl``, apart from the
scoring path: nothing here runs per request. A change reaches the replicas through the
shared desired state (``components.desired``) and each replica's ``ReplicaSync``
(``components.replica``) applies it; this class sees the replica only through
``ReplicaState``, the few calls it needs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from serving.components.desired import DesiredState
from serving.components.replica import require_control
from serving.components.shadow import ShadowStats, ShadowSummary
from serving.components.traffic_policy import TrafficPolicy, VersionRefused, new_salt
from serving.errors import Conflict, InvalidRequest
from serving.registry import ModelRegistry
from serving.settings import ModelSettings, TrafficPolicyConfig

REPLICA_FIELDS = ("generation", "ok", "cause", "versions", "policy")


@dataclass(frozen=True)
class TrafficChange:
    """A change answered once every live replica applied it (docs/api.md, rollout)."""

    model: str
    generation: int
    policy: dict[str, Any] | None  # the stored policy, salt and bucket ranges included
    activation_delay_s: float
    effective_at: float
    acknowledged_after_s: dict[str, float]
    late_replicas: list[str]
    propagation_s: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrafficReport:
    """The desired state of one model, what each live replica reports, the shadow summary
    and the last changes."""

    model: str
    generation: int
    loaded: bool
    policy: dict[str, Any] | None
    effective_at: float | None
    promoted_from: str | None
    excluded: list[str]
    started_at: float | None  # evidence for the running rollout counts from here
    control_mode: str
    versions: list[str]
    failures: dict[str, str]
    replicas: dict[str, dict[str, Any]]
    shadow: ShadowSummary | None
    history: list[dict[str, Any]]

    @property
    def candidates(self) -> list[str]:
        return [c["version"] for c in (self.policy or {}).get("candidates") or []]

    @property
    def default(self) -> str | None:
        return (self.policy or {}).get("default")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class ReplicaState(Protocol):
    """What rollout control needs of this replica (``components.replica.ReplicaSync``)."""

    @property
    def started(self) -> bool: ...

    @property
    def poll_enabled(self) -> bool: ...

    @property
    def excluded(self) -> tuple[str, ...]: ...

    @property
    def feature_names(self) -> tuple[str, ...] | None: ...

    async def ensure_started(self) -> None: ...

    async def publish(self, changes: dict[str, Any]) -> dict[str, Any]: ...

    async def apply(self, state: dict[str, Any]) -> None: ...

    async def send_report(self) -> dict[str, Any]: ...

    async def load_versions(self, versions: Sequence[str]) -> None: ...

    def check_versions(self, versions: Sequence[str], names: tuple[str, ...] | None) -> None: ...

    def current_default(self) -> str: ...


class RolloutControl:
    """The admin side of one model: every change goes through the desired state."""

    def __init__(
        self,
        name: str,
        settings: ModelSettings,
        registry: ModelRegistry,
        desired: DesiredState,
        replica: ReplicaState,
    ) -> None:
        self.name = name
        self.settings = settings
        self.registry = registry
        self.desired = desired
        self.replica = replica

    async def _started(self) -> None:
        if not self.replica.started:
            await self.replica.ensure_started()

    def _activation_s(self) -> float:
        """How long after a change every replica switches: long enough for each to have
        polled and warmed its versions (``models.rollout_activation_s`` overrides)."""
        if self.settings.rollout_activation_s is not None:
            return self.settings.rollout_activation_s
        return self.settings.poll_interval_s + 0.5 if self.replica.poll_enabled else 0.0

    async def set_traffic(
        self,
        config: dict[str, Any] | None,
        feature_names: tuple[str, ...] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> TrafficChange:
        """Validate on this replica (load, warm, signature), publish, wait until every live
        replica has applied it; the answer holds the measured propagation."""
        await self._started()
        names = feature_names or self.replica.feature_names
        policy_dict = None
        if config is not None:
            try:
                parsed = TrafficPolicyConfig.model_validate(config)
            except ValueError as exc:
                raise InvalidRequest(
                    str(exc).splitlines()[-1][:300] if str(exc) else "bad policy", field="policy"
                ) from None
            current = (await self.desired.get(self.name)).get("policy") or {}
            policy = self._next_policy(parsed, current)
            await self._prepare(policy.versions, names)
            policy_dict = {**parsed.model_dump(), **policy.to_config()}
        activation = self._activation_s()
        changed = time.time()
        extra = dict(extra or {})
        before = ((await self.desired.get(self.name)).get("policy") or {}).get("candidates") or []
        after = (policy_dict or {}).get("candidates") or []
        if after and {c["version"] for c in after} != {c["version"] for c in before}:
            extra["started_at"] = changed  # evidence for this rollout counts from here
        state = await self.replica.publish(
            {"policy": policy_dict, "activate_at": changed + activation, **extra}
        )
        await self.replica.apply(state)
        await self.replica.send_report()
        return await self._await_replicas(state, changed, activation)

    def _next_policy(self, parsed: TrafficPolicyConfig, current: dict[str, Any]) -> TrafficPolicy:
        """The policy a change asks for, its buckets rebalanced from the running rollout's
        (same salt: the running one unless the change names another; with no candidate
        or shadow running, a new random one)."""
        default = parsed.default or self.replica.current_default()
        running = (
            current.get("salt") if current.get("candidates") or current.get("shadow") else None
        )
        salt = parsed.salt or running or new_salt()
        previous = current.get("buckets") if salt == current.get("salt") else None
        config = parsed.model_copy(update={"default": default, "salt": salt, "buckets": None})
        return TrafficPolicy.build(self.name, config, default, previous)

    async def _prepare(self, versions: tuple[str, ...], names: tuple[str, ...] | None) -> None:
        if self.settings.control_mode != "none":
            missing = set(versions) - set(self.registry.loaded_versions(self.name))
            if missing or set(versions) & set(self.registry.failures(self.name)):
                await self.replica.load_versions(versions)
        self.replica.check_versions(versions, names)

    async def _await_replicas(
        self, state: dict[str, Any], changed: float, activation: float
    ) -> TrafficChange:
        generation = state["generation"]
        activate_at = float(state["activate_at"])
        deadline = activate_at + 2 * max(self.settings.poll_interval_s, 0.5) + 5.0
        max_age = max(3 * self.settings.poll_interval_s, 10.0)
        while True:
            reports = await self.desired.reports(self.name, max_age)
            pending = [r for r, v in reports.items() if v.get("generation", 0) < generation]
            failed = {
                r: v.get("cause")
                for r, v in reports.items()
                if v.get("generation") == generation and not v.get("ok", True)
            }
            now = time.time()
            if failed or (not pending and now >= activate_at) or now > deadline:
                break
            await asyncio.sleep(0.05)
        acked = {
            r: round(v["seen_at"] - changed, 3)
            for r, v in reports.items()
            if v.get("generation", 0) >= generation
        }
        if failed:  # one replica cannot serve it: every replica goes back to what it served
            await self.replica.publish(
                {"policy": state.get("previous"), "activate_at": time.time()}
            )
            raise VersionRefused(
                f"model {self.name}: the change was refused on {len(failed)} replica(s) and "
                f"reverted: {next(iter(failed.values()))}",
                field="version",
            )
        return TrafficChange(
            model=self.name,
            generation=generation,
            policy=state.get("policy"),
            activation_delay_s=round(activation, 3),
            effective_at=activate_at,
            acknowledged_after_s=acked,
            late_replicas=pending,
            propagation_s=max(acked.values(), default=0.0),
        )

    async def promote(self, version: str | None = None) -> TrafficChange:
        """The candidate (the only one, or ``version``) becomes the default; candidates and
        shadow go. Rollback afterwards returns to the default before the promotion."""
        await self._started()
        config = (await self.desired.get(self.name)).get("policy")
        candidates = [c["version"] for c in (config or {}).get("candidates", [])]
        if version is None:
            if len(candidates) != 1:
                raise Conflict(
                    f"model {self.name} has {len(candidates)} candidates; "
                    "name the version to promote",
                    field="version",
                )
            version = candidates[0]
        previous = config["default"] if config else self.replica.current_default()
        if version == previous:
            raise Conflict(
                f"model {self.name} version {version} is already the default", field="version"
            )
        return await self.set_traffic({"default": version}, extra={"promoted_from": previous})

    async def rollback(self) -> TrafficChange:
        """One call: candidates and shadow stop at once; with none (after a promotion) the
        default before the promotion comes back. Works whatever state the candidate is in."""
        await self._started()
        state = await self.desired.get(self.name)
        config = state.get("policy") or {}
        if config.get("candidates") or config.get("shadow"):
            target = config["default"]
            extra: dict[str, Any] = {}
        elif state.get("promoted_from"):
            target, extra = state["promoted_from"], {"promoted_from": None}
        else:
            raise Conflict(f"model {self.name} has no rollout to roll back", field="model")
        return await self.set_traffic({"default": target}, extra=extra)

    async def exclude_version(self, version: str, excluded: bool) -> TrafficChange:
        """Unload (or load again) one version on every replica; a version the policy uses
        is refused."""
        require_control(self.settings, "unload" if excluded else "load")
        await self._started()
        state = await self.desired.get(self.name)
        current = list(state.get("excluded") or [])
        if excluded:
            config = state.get("policy")
            in_use = (
                TrafficPolicy.build(
                    self.name, TrafficPolicyConfig.model_validate(config), config["default"]
                ).versions
                if config
                else (self.replica.current_default(),)
            )
            if version in in_use:
                raise Conflict(
                    f"model {self.name} version {version} takes traffic (policy: {list(in_use)}); "
                    "roll back or promote first",
                    field="version",
                )
            current = sorted(set(current) | {version}, key=int)
        else:
            current = [v for v in current if v != version]
        changed = time.time()
        new = await self.replica.publish({"excluded": current, "activate_at": changed})
        await self.replica.apply(new)
        await self.replica.send_report()
        return await self._await_replicas(new, changed, 0.0)

    async def traffic(self) -> TrafficReport:
        """The desired state, what each live replica reports, and the shadow summary."""
        await self._started()
        state = await self.replica.send_report()  # this replica's figures are current
        reports = await self.desired.reports(
            self.name, max(3 * self.settings.poll_interval_s, 10.0)
        )
        shadows = [r["shadow"] for r in reports.values() if r.get("shadow")]
        return TrafficReport(
            model=self.name,
            generation=state["generation"],
            loaded=state["loaded"],
            policy=state.get("policy"),
            effective_at=state.get("activate_at"),
            promoted_from=state.get("promoted_from"),
            excluded=state.get("excluded") or [],
            started_at=state.get("started_at"),
            control_mode=self.settings.control_mode,
            versions=self.registry.loaded_versions(self.name),
            failures=self.registry.failures(self.name),
            replicas={r: {k: v.get(k) for k in REPLICA_FIELDS} for r, v in reports.items()},
            shadow=ShadowStats.summary(shadows) if shadows else None,
            history=await self.desired.history(self.name, 20),  # the last changes (durable)
        )
