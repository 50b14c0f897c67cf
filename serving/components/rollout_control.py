"""Rollout control of a model service: validate versions, publish a traffic policy, wait
for every replica, promote, roll back, unload one version, report.

A mixin of ``ModelService`` (``components.models``), kept apart from the scoring path:
nothing here runs per request. The change itself reaches the replicas through the
shared desired state (``components.traffic_policy.ModelStates``) and is applied by each
replica's ``ModelService.reconcile``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from serving.components.traffic_policy import ShadowStats, TrafficPolicy, VersionRefused, new_salt
from serving.errors import Conflict, InvalidRequest, ModelNotFound
from serving.settings import TrafficPolicyConfig


class TrafficControl:
    """The admin side of ``ModelService`` (its attributes: registry, settings, _desired...)."""

    registry: Any
    settings: Any
    name: str
    _desired: Any
    _excluded: tuple[str, ...]
    _names: tuple[str, ...] | None
    _policy: TrafficPolicy | None
    _poll_enabled: bool
    _started: bool

    # -- rollout control ----------------------------------------------------------------------
    def check_versions(
        self, versions: tuple[str, ...] | list[str], names: tuple[str, ...] | None
    ) -> None:
        """Each version loaded, fed by the features read (``names``, when known) and warmed
        by one call; else ``VersionRefused`` naming the version and the cause."""
        failures = self.registry.failures(self.name)
        for version in versions:
            if version in self._excluded:
                raise VersionRefused(
                    f"model {self.name} version {version} is unloaded; load it first",
                    field="version",
                )
            if version in failures:
                raise VersionRefused(
                    f"model {self.name} version {version} cannot load: {failures[version]}",
                    field="version",
                )
            try:
                runtime = self.registry.get(self.name, version)
            except ModelNotFound as exc:
                raise VersionRefused(
                    f"model {self.name} version {version}: {exc.message}", field="version"
                ) from None
            features = runtime.features
            width = (
                runtime.inputs[0].shape[-1]
                if runtime.inputs and runtime.inputs[0].shape
                else len(features)
            )
            if features and width > 0 and len(features) != width:
                raise VersionRefused(
                    f"model {self.name} version {version} lists {len(features)} features in "
                    f"metrics.json but its input takes {width}",
                    field="version",
                )
            if names is not None:
                missing = [f for f in features if f not in names]
                if missing:
                    raise VersionRefused(
                        f"model {self.name} version {version} needs features the feature "
                        f"service does not provide: {missing}",
                        field="version",
                    )
            try:  # warm-up: one real call, so a graph that cannot run is refused before traffic
                x = np.zeros((2, width if width > 0 else len(features)), np.float32)
                out = runtime.predict({runtime.inputs[0].name: x})
                scores = out[runtime.outputs[0].name]
                if len(scores) != 2:
                    raise ValueError(f"answered {len(scores)} rows for 2")
            except Exception as exc:
                raise VersionRefused(
                    f"model {self.name} version {version} fails its warm-up call: "
                    f"{type(exc).__name__}: {exc}"[:600],
                    field="version",
                ) from None

    def _activation_s(self) -> float:
        if self.settings.rollout_activation_s is not None:
            return self.settings.rollout_activation_s
        return self.settings.poll_interval_s + 0.5 if self._poll_enabled else 0.0

    async def set_traffic(
        self,
        config: dict[str, Any] | None,
        feature_names: tuple[str, ...] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Validate on this replica (load, warm, signature), publish, wait until every live
        replica has applied it; the answer holds the measured propagation."""
        if not self._started:
            await self._ensure_started()
        names = feature_names or self._names
        policy_dict = None
        if config is not None:
            try:
                parsed = TrafficPolicyConfig.model_validate(config)
            except ValueError as exc:
                raise InvalidRequest(
                    str(exc).splitlines()[-1][:300] if str(exc) else "bad policy", field="policy"
                ) from None
            current = (await self._desired.get(self.name)).get("policy") or {}
            policy = self._next_policy(parsed, current)
            await self._prepare(policy.versions, names)
            policy_dict = {**parsed.model_dump(), **policy.to_config()}
        activation = self._activation_s()
        changed = time.time()
        extra = dict(extra or {})
        before = ((await self._desired.get(self.name)).get("policy") or {}).get("candidates") or []
        after = (policy_dict or {}).get("candidates") or []
        if after and {c["version"] for c in after} != {c["version"] for c in before}:
            extra["started_at"] = changed  # evidence for this rollout counts from here
        state = await self._publish(
            {"policy": policy_dict, "activate_at": changed + activation, **extra}
        )
        await self._apply(state)
        await self._send_report()
        return await self._await_replicas(state, changed, activation)

    def _next_policy(self, parsed: TrafficPolicyConfig, current: dict[str, Any]) -> TrafficPolicy:
        """The policy a change asks for, its buckets rebalanced from the running rollout's
        (same salt: the running one unless the change names another; with no candidate
        or shadow running, a new random one)."""
        default = parsed.default or self._current_default()
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
                spec = await asyncio.to_thread(
                    self.registry.load, self.name, self._excluded, versions
                )
                self._configure(spec)
                self._columns.clear()
        self.check_versions(versions, names)

    def _current_default(self) -> str:
        if self._policy is not None:
            return self._policy.default
        return self.registry.get(self.name).version.version

    async def _await_replicas(
        self, state: dict[str, Any], changed: float, activation: float
    ) -> dict[str, Any]:
        generation = state["generation"]
        activate_at = float(state["activate_at"])
        deadline = activate_at + 2 * max(self.settings.poll_interval_s, 0.5) + 5.0
        max_age = max(3 * self.settings.poll_interval_s, 10.0)
        while True:
            reports = await self._desired.reports(self.name, max_age)
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
            await self._publish({"policy": state.get("previous"), "activate_at": time.time()})
            raise VersionRefused(
                f"model {self.name}: the change was refused on {len(failed)} replica(s) and "
                f"reverted: {next(iter(failed.values()))}",
                field="version",
            )
        return {
            "model": self.name,
            "generation": generation,
            "policy": state.get("policy"),
            "activation_delay_s": round(activation, 3),
            "effective_at": activate_at,
            "acknowledged_after_s": acked,
            "late_replicas": pending,
            "propagation_s": max(acked.values(), default=0.0),
        }

    async def promote(self, version: str | None = None) -> dict[str, Any]:
        """The candidate (the only one, or ``version``) becomes the default; candidates and
        shadow go. Rollback afterwards returns to the default before the promotion."""
        if not self._started:
            await self._ensure_started()
        state = await self._desired.get(self.name)
        config = state.get("policy")
        candidates = [c["version"] for c in (config or {}).get("candidates", [])]
        if version is None:
            if len(candidates) != 1:
                raise Conflict(
                    f"model {self.name} has {len(candidates)} candidates; name the version to promote",
                    field="version",
                )
            version = candidates[0]
        previous = config["default"] if config else self._current_default()
        if version == previous:
            raise Conflict(
                f"model {self.name} version {version} is already the default", field="version"
            )
        return await self.set_traffic({"default": version}, extra={"promoted_from": previous})

    async def rollback(self) -> dict[str, Any]:
        """One call: candidates and shadow stop at once; with none (after a promotion) the
        default before the promotion comes back. Works whatever state the candidate is in."""
        if not self._started:
            await self._ensure_started()
        state = await self._desired.get(self.name)
        config = state.get("policy") or {}
        if config.get("candidates") or config.get("shadow"):
            target = config["default"]
            extra: dict[str, Any] = {}
        elif state.get("promoted_from"):
            target, extra = state["promoted_from"], {"promoted_from": None}
        else:
            raise Conflict(f"model {self.name} has no rollout to roll back", field="model")
        return await self.set_traffic({"default": target}, extra=extra)

    async def exclude_version(self, version: str, excluded: bool) -> dict[str, Any]:
        """Unload (or load again) one version on every replica; a version the policy uses
        is refused."""
        self._controllable("unload" if excluded else "load")
        if not self._started:
            await self._ensure_started()
        state = await self._desired.get(self.name)
        current = list(state.get("excluded") or [])
        if excluded:
            config = state.get("policy")
            in_use = (
                TrafficPolicy.build(
                    self.name, TrafficPolicyConfig.model_validate(config), config["default"]
                ).versions
                if config
                else (self._current_default(),)
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
        new = await self._publish({"excluded": current, "activate_at": changed})
        await self._apply(new)
        await self._send_report()
        return await self._await_replicas(new, changed, 0.0)

    async def traffic(self) -> dict[str, Any]:
        """The desired state, what each live replica reports, and the shadow summary."""
        if not self._started:
            await self._ensure_started()
        state = (
            await self._send_report()
        )  # this replica's figures are current; the others' one poll old
        reports = await self._desired.reports(
            self.name, max(3 * self.settings.poll_interval_s, 10.0)
        )
        shadows = [r["shadow"] for r in reports.values() if r.get("shadow")]
        return {
            "model": self.name,
            "generation": state["generation"],
            "loaded": state["loaded"],
            "policy": state.get("policy"),
            "effective_at": state.get("activate_at"),
            "promoted_from": state.get("promoted_from"),
            "excluded": state.get("excluded") or [],
            "started_at": state.get("started_at"),
            "control_mode": self.settings.control_mode,
            "versions": self.registry.loaded_versions(self.name),
            "failures": self.registry.failures(self.name),
            "replicas": {
                r: {k: v.get(k) for k in ("generation", "ok", "cause", "versions", "policy")}
                for r, v in reports.items()
            },
            "shadow": ShadowStats.summary(shadows) if shadows else None,
            "history": await self._desired.history(
                self.name, 20
            ),  # the last changes (durable state)
        }
