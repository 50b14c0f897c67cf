"""One replica following the shared desired state of one model.

The desired state (``components.desired``: loaded or not, traffic policy, excluded
versions, a generation per change) is the one truth every replica of a model converges
to. ``ReplicaSync`` applies it on this replica: it loads and warms the versions a change
needs, reports back (generation applied, or the cause it cannot), and switches the policy
at the change's ``activate_at`` moment, so every replica switches together and no
customer flips between replicas. It also reads the Serve config's policy on the first
call and polls for changes made on other replicas (and new versions on disk).

The scoring path reads ``policy`` and ``shadow`` (plain attributes: one lookup per call);
the rollout control (``components.rollout_control``) changes the state through
``publish`` and ``apply``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from serving.components.desired import DesiredState
from serving.components.columns import FeatureColumns
from serving.components.shadow import ShadowStats
from serving.components.traffic_policy import TrafficPolicy, VersionRefused
from serving.errors import Conflict, ModelNotFound
from serving.registry import ModelRegistry
from serving.repository import ModelSpec, read_model
from serving.settings import ModelSettings, TrafficPolicyConfig

log = logging.getLogger("reengage")


def require_control(settings: ModelSettings, action: str) -> None:
    """Repository calls are refused in control mode ``none`` (the operator's choice)."""
    if settings.control_mode == "none":
        raise Conflict(
            f"model control mode is 'none': repository {action} is refused "
            "(models.control_mode: poll or explicit allows it)",
            field="model_name",
        )


class ReplicaSync:
    """This replica's side of the desired state: start, poll, apply, report.

    ``configure`` is called with the spec of every (re)load, so the owner sizes its
    batcher from config.pbtxt; ``columns`` is cleared on every (re)load."""

    def __init__(
        self,
        name: str,
        settings: ModelSettings,
        registry: ModelRegistry,
        desired: DesiredState,
        columns: FeatureColumns,
        configure: Callable[[ModelSpec], None],
        *,
        replica: str,
        poll: bool,
    ) -> None:
        self.name = name
        self.settings = settings
        self.registry = registry
        self.desired = desired
        self.columns = columns
        self.replica = replica
        self.poll_enabled = poll and settings.poll_interval_s > 0
        self.started = False
        self.policy: TrafficPolicy | None = None  # read per request by the scoring path
        self.shadow: ShadowStats | None = None  # shadow against default while a shadow runs
        self.excluded: tuple[str, ...] = ()
        self.unloaded = False
        self._configure = configure
        self._generation = 0
        self._epoch: str | None = None  # the desired state's epoch: a restarted actor's is new
        self._poller: asyncio.Task[None] | None = None
        self._start_task: asyncio.Task[None] | None = None
        self._pending: asyncio.TimerHandle | None = None
        self._loads: float | None = None  # the last repository load call seen (re-reads disk)
        self._applied: dict[str, Any] = {"generation": 0, "ok": True, "cause": None}

    @property
    def feature_names(self) -> tuple[str, ...] | None:
        """The feature layout last scored: what a new version's features are checked
        against (None before the first call)."""
        return self.columns.names

    # -- versions ---------------------------------------------------------------------------
    def load(self) -> list[str]:
        """(Re)load the model's versions from disk, the policy's included."""
        extra = self.policy.versions if self.policy else ()
        self._reloaded(self.registry.load(self.name, exclude=self.excluded, extra=extra))
        return self.registry.loaded_versions(self.name)

    async def load_versions(self, versions: Sequence[str]) -> None:
        """(Re)load from disk with ``versions`` (a change's), reading in a thread."""
        spec = await asyncio.to_thread(self.registry.load, self.name, self.excluded, versions)
        self._reloaded(spec)

    def _reloaded(self, spec: ModelSpec) -> None:
        self._configure(spec)
        self.columns.clear()

    def current_default(self) -> str:
        """The version that serves rows no candidate takes."""
        if self.policy is not None:
            return self.policy.default
        return self.registry.get(self.name).version.version

    def check_versions(self, versions: Sequence[str], names: tuple[str, ...] | None) -> None:
        """Each version loaded, fed by the features read (``names``, when known) and warmed
        by one call; else ``VersionRefused`` naming the version and the cause."""
        failures = self.registry.failures(self.name)
        for version in versions:
            if version in self.excluded:
                raise VersionRefused(
                    f"model {self.name} version {version} is unloaded; load it first",
                    field="version",
                )
            if version in failures:
                raise VersionRefused(
                    f"model {self.name} version {version} cannot load: {failures[version]}",
                    field="version",
                )
            self._check_version(version, names)

    def _check_version(self, version: str, names: tuple[str, ...] | None) -> None:
        try:
            runtime = self.registry.get(self.name, version)
        except ModelNotFound as exc:
            raise VersionRefused(
                f"model {self.name} version {version}: {exc.message}", field="version"
            ) from None
        features = runtime.features
        shape = runtime.inputs[0].shape if runtime.inputs else None
        width = shape[-1] if shape else len(features)
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
            scores = runtime.predict({runtime.inputs[0].name: x})[runtime.outputs[0].name]
            if len(scores) != 2:
                raise ValueError(f"answered {len(scores)} rows for 2")
        except Exception as exc:
            raise VersionRefused(
                f"model {self.name} version {version} fails its warm-up call: "
                f"{type(exc).__name__}: {exc}"[:600],
                field="version",
            ) from None

    # -- repository control -----------------------------------------------------------------
    async def load_all(self) -> list[str]:
        """Repository load: every version on disk, on every replica."""
        require_control(self.settings, "load")
        versions = self.load()
        self.unloaded = False
        self._loads = time.time()
        await self.publish({"loaded": True, "loads": self._loads})
        return versions

    async def unload_all(self) -> None:
        require_control(self.settings, "unload")
        self.registry.unload(self.name)
        self.unloaded = True
        await self.publish({"loaded": False})

    # -- desired state ----------------------------------------------------------------------
    async def publish(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Tell the other replicas (they reconcile on their next poll)."""
        state = await self.desired.update(self.name, changes)
        self._generation, self._epoch = state["generation"], state.get("epoch")
        await self.send_report()
        return state

    async def ensure_started(self) -> None:
        """First call on this replica: follow the desired state (and the Serve config's
        policy) before serving, so a new replica never answers under an old policy."""
        if self._start_task is None:
            self._start_task = asyncio.get_running_loop().create_task(self._start())
        await asyncio.shield(self._start_task)

    async def _start(self) -> None:
        try:
            await self._seed_config()
            await self.reconcile()
        except Exception:  # the poller retries; serving goes on with what is loaded
            log.exception("first sync of model %s with the desired state failed", self.name)
        finally:
            self.started = True
            if self.poll_enabled and self._poller is None:
                self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _seed_config(self) -> None:
        config = self.settings.rollout.get(self.name)
        policy = None
        if config is not None:
            default = config.default or self.registry.get(self.name).version.version
            built = TrafficPolicy.build(
                self.name, config.model_copy(update={"default": default}), default
            )
            policy = {**config.model_dump(), **built.to_config()}  # salt and buckets stored with it
        fingerprint = json.dumps(config.model_dump() if config else None, sort_keys=True)
        await self.desired.seed(self.name, policy, fingerprint, time.time())

    async def _poll(self) -> None:
        """Follow the shared desired state and pick up new versions on disk."""
        while True:
            await asyncio.sleep(self.settings.poll_interval_s)
            try:
                await self.reconcile()
            except Exception:  # a bad poll must not kill serving; the next one retries
                log.exception("model repository poll failed for %s", self.name)

    def report(self) -> dict[str, Any]:
        """What this replica sends with every poll: generation applied, versions, policy."""
        return {
            **self._applied,
            "versions": self.registry.loaded_versions(self.name),
            "failures": self.registry.failures(self.name),
            "policy": self.policy.to_config() if self.policy else None,
            "shadow": self.shadow.to_dict() if self.shadow else None,
        }

    async def send_report(self) -> dict[str, Any]:
        """This replica's report in, the desired state out (one round trip)."""
        return await self.desired.sync(self.name, self.replica, self.report())

    async def reconcile(self) -> None:
        """Apply a change made on another replica (load/unload, policy, excluded versions),
        or new versions found on disk (control mode poll)."""
        state = await self.send_report()
        # never an older state (a poll racing an admin call); any state of a new epoch
        if state["generation"] > self._generation or state.get("epoch") != self._epoch:
            await self.apply(state)
            await self.send_report()  # acknowledge at once: the caller waits for every replica
            return
        if (
            self.settings.control_mode == "poll"
            and state["loaded"]
            and self.name in self.registry.names()
            and await asyncio.to_thread(self._repository_changed)
        ):
            self.load()

    async def apply(self, state: dict[str, Any]) -> None:
        """Load what ``state`` needs and switch to its policy at its ``activate_at``; a
        change this replica cannot serve keeps what it serves, and its report says why."""
        generation = state["generation"]
        self._generation, self._epoch = generation, state.get("epoch")
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        try:
            policy = self._prepare(state)
        except Exception as exc:  # this replica cannot serve the change: say why
            self._applied = {"generation": generation, "ok": False, "cause": str(exc)}
            log.error("model %s: cannot apply generation %d: %s", self.name, generation, exc)
            return
        self._applied = {"generation": generation, "ok": True, "cause": None}
        if not state["loaded"]:
            return
        delay = float(state.get("activate_at") or 0.0) - time.time()
        if delay <= 0:
            self._switch(policy)
        else:  # every replica switches at the same moment: no customer flips between replicas
            self._pending = asyncio.get_running_loop().call_later(delay, self._switch, policy)

    def _prepare(self, state: dict[str, Any]) -> TrafficPolicy | None:
        """Unload, or load and check the versions ``state``'s policy needs."""
        if not state["loaded"]:
            if self.name in self.registry.names():
                self.registry.unload(self.name)
            self.unloaded = True
            return None
        config = state.get("policy")
        policy = (
            None
            if config is None
            else TrafficPolicy.build(
                self.name, TrafficPolicyConfig.model_validate(config), config["default"]
            )
        )
        excluded = tuple(state.get("excluded") or ())
        loaded = set(self.registry.loaded_versions(self.name))
        needed = set(policy.versions if policy else ())
        if (
            self.unloaded
            or excluded != self.excluded
            or not needed <= loaded
            or set(excluded) & loaded
            or state.get("loads") != self._loads
        ):
            self.excluded, self._loads = excluded, state.get("loads")
            self._reloaded(
                self.registry.load(
                    self.name, exclude=excluded, extra=policy.versions if policy else ()
                )
            )
        self.unloaded = False
        if policy is not None:
            self.check_versions(policy.versions, self.columns.names)
        return policy

    def _switch(self, policy: TrafficPolicy | None) -> None:
        self._pending = None
        previous, self.policy = self.policy, policy
        if policy is None or policy.shadow is None:
            self.shadow = None
        elif (
            previous is None
            or previous.shadow != policy.shadow
            or previous.default != policy.default
        ):
            self.shadow = ShadowStats()
        log.info(
            "model %s: traffic policy %s",
            self.name,
            policy.to_config() if policy else "none (newest)",
        )

    def _repository_changed(self) -> bool:
        """Reads config.pbtxt and lists version folders: disk I/O, run in a thread."""
        on_disk = read_model(self.settings.repo_path, self.name).policy_versions
        return on_disk != self.registry.spec(self.name).policy_versions
