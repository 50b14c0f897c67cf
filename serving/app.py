"""``build_app(args) -> Application``: the import path ``deploy/serve.yaml`` names.

The topology is configuration. ``fused`` (default) puts feature lookup, both models and
the bandit inside each ingress replica, so a request crosses no DeploymentHandle and pays
no hop per component; ``split`` makes each its own deployment with its own replicas,
autoscaling and resources. Deployment classes are
plain subclasses of the components and state their own options (``options_for``).
"""

from __future__ import annotations

from typing import Any, cast

from ray import serve
from ray.serve import Application, Deployment

from serving.deployments.components import (
    BanditDeployment,
    FeatureDeployment,
    ModelDeployment,
    WriterDeployment,
)
from serving.deployments.artifacts import anchor_models, for_replicas
from serving.deployments.cluster import warn_embedded_state
from serving.deployments.ingress import Ingress
from serving.repository import scan
from serving.security import ensure_admin_token
from serving.settings import Settings, load_settings
from serving.shared_state import state_spec

APP_NAME = "reengage"


def build_app(args: dict[str, Any] | None = None) -> Application:
    """Validate ``args`` (nested settings overrides) and compose the deployment graph."""
    settings = load_settings(args or {})
    warn_embedded_state(settings)  # `serve deploy` on a multi-node cluster with node-local state
    ensure_admin_token(settings)  # secure by default: admin and feedback need a token
    # what replicas get: with server.artifacts=working_dir, paths inside the shipped folder
    replica = for_replicas(settings)
    ingress = _deployment(Ingress).options(**Ingress.options_for(settings))
    writer = _writer(settings, replica)
    if settings.server.topology == "fused":
        return ingress.bind(replica, writer=writer)
    features = _deployment(FeatureDeployment).options(**FeatureDeployment.options_for(settings))
    repo = settings.models.repo_path  # here, or (a Serve config build) inside the shipped folder
    repo = repo if repo.is_dir() else anchor_models(replica.models, check=False).repo_path
    models = {
        name: _deployment(ModelDeployment)
        .options(**ModelDeployment.options_for(settings, name))
        .bind(name, replica.models, state_spec(replica))
        for name in scan(repo)
    }
    bandit = None
    if settings.bandit.enabled:
        bandit = (
            _deployment(BanditDeployment)
            .options(**BanditDeployment.options_for(settings))
            .bind(replica)
        )
    return ingress.bind(
        replica, features=features.bind(replica), models=models, bandit=bandit, writer=writer
    )


def _deployment(cls: type) -> Deployment:
    """``serve.deployment`` applied to a class is a ``Deployment``; Ray annotates every call
    as returning a decorator, so the type is stated here, once."""
    return cast(Deployment, serve.deployment(cls))


def _writer(settings: Settings, replica: Settings) -> Application | None:
    if not settings.llm.enabled:
        return None
    return (
        _deployment(WriterDeployment)
        .options(**WriterDeployment.options_for(settings))
        .bind(replica.llm)
    )
