"""``build_app(args) -> Application``: the import path ``deploy/serve.yaml`` names.

The topology is configuration. ``fused`` (default, chosen by measurement: see
docs/benchmarks.md) puts feature lookup, both models and the bandit inside each ingress
replica, so a request crosses no DeploymentHandle; ``split`` makes each its own
deployment with its own replicas, autoscaling and resources.
"""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from serving.deployments.ingress import Ingress
from serving.repository import scan
from serving.services import BanditService, FeatureService, ModelServer, WriterService
from serving.settings import Settings, load_settings

APP_NAME = "reengage"


def _scaling(settings: Settings, replicas: int | str, num_cpus: float | None = None) -> dict[str, Any]:
    server = settings.server
    opts: dict[str, Any] = {
        "max_ongoing_requests": server.max_ongoing_requests,
        "ray_actor_options": {"num_cpus": server.num_cpus if num_cpus is None else num_cpus},
    }
    if replicas == "auto":
        opts["autoscaling_config"] = {
            "min_replicas": 1,
            "max_replicas": server.max_replicas,
            "target_ongoing_requests": max(2, server.max_ongoing_requests // 4),
            "upscale_delay_s": 5,
            "downscale_delay_s": 60,
        }
    else:
        opts["num_replicas"] = int(replicas)
    return opts


def build_app(args: dict[str, Any] | None = None) -> Application:
    """Validate ``args`` (nested settings overrides) and compose the deployment graph."""
    settings = load_settings(args or {})
    ingress = serve.deployment(Ingress).options(name="Ingress", **_scaling(settings, settings.server.ingress_replicas))
    writer = _writer(settings)
    if settings.server.topology == "fused":
        return ingress.bind(settings, writer=writer)

    from serving.deployments.local import model_feature_services

    features = serve.deployment(FeatureService).options(name="FeatureLookup", **_scaling(settings, "auto", 0.1))
    models = {
        name: serve.deployment(ModelServer).options(name=f"Model_{name}", **_scaling(settings, "auto", 0.25)).bind(name, settings.models)
        for name in scan(settings.models.repo_path)
    }
    bandit = None
    if settings.bandit.enabled:
        bandit = serve.deployment(BanditService).options(name="BanditRouter", **_scaling(settings, "auto", 0.1)).bind(settings.bandit)
    return ingress.bind(
        settings,
        features=features.bind(settings.features, model_feature_services(settings)),
        models=models,
        bandit=bandit,
        writer=writer,
    )


def _writer(settings: Settings) -> Any:
    """The LLM is always its own deployment: it scales (and takes a GPU) apart from scoring."""
    if not settings.llm.enabled:
        return None
    from serving.llm.engine import resolve_backend

    llm = settings.llm
    gpus = llm.num_gpus if llm.num_gpus is not None else (1.0 if resolve_backend(llm) == "vllm" else 0.0)
    options = {
        "name": "EmailWriter",
        "max_ongoing_requests": max(4 * llm.max_batch_size, 16),
        "ray_actor_options": {"num_cpus": llm.num_cpus, "num_gpus": gpus},
        "autoscaling_config": {"min_replicas": 1, "max_replicas": llm.max_replicas,
                               "target_ongoing_requests": llm.max_batch_size},
        "health_check_period_s": 30,
    }
    return serve.deployment(WriterService).options(**options).bind(llm)
