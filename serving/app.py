"""``build_app(args) -> Application``: the import path ``deploy/serve.yaml`` names.

The topology is configuration. ``fused`` (default, chosen by measurement: see
docs/benchmarks.md) puts feature lookup, both models and the bandit inside each ingress
replica, so a request crosses no DeploymentHandle; ``split`` makes each its own
deployment with its own replicas, autoscaling and resources. Deployment classes are
plain subclasses of the components and state their own options (``options_for``).
"""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from serving.deployments.components import (BanditDeployment, FeatureDeployment, ModelDeployment,
                                            WriterDeployment)
from serving.deployments.ingress import Ingress
from serving.repository import scan
from serving.settings import Settings, load_settings

APP_NAME = "reengage"


def build_app(args: dict[str, Any] | None = None) -> Application:
    """Validate ``args`` (nested settings overrides) and compose the deployment graph."""
    settings = load_settings(args or {})
    ingress = serve.deployment(Ingress).options(**Ingress.options_for(settings))
    writer = _writer(settings)
    if settings.server.topology == "fused":
        return ingress.bind(settings, writer=writer)
    features = serve.deployment(FeatureDeployment).options(**FeatureDeployment.options_for(settings))
    models = {
        name: serve.deployment(ModelDeployment).options(**ModelDeployment.options_for(settings, name))
        .bind(name, settings.models)
        for name in scan(settings.models.repo_path)
    }
    bandit = None
    if settings.bandit.enabled:
        bandit = serve.deployment(BanditDeployment).options(**BanditDeployment.options_for(settings)).bind(settings)
    return ingress.bind(settings, features=features.bind(settings), models=models, bandit=bandit, writer=writer)


def _writer(settings: Settings) -> Any:
    if not settings.llm.enabled:
        return None
    return serve.deployment(WriterDeployment).options(**WriterDeployment.options_for(settings)).bind(settings.llm)
