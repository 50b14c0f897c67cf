"""Builds the services one replica holds in-process (the fused topology)."""

from __future__ import annotations

from typing import Any

from serving.repository import scan
from serving.services import BanditService, FeatureService, ModelServer
from serving.settings import Settings


def model_feature_services(settings: Settings) -> list[str]:
    """Feature services named by the scoring models' config.pbtxt, churn first."""
    specs = scan(settings.models.repo_path)
    names = [settings.models.churn, settings.models.engagement]
    services = [specs[n].feature_service for n in names if n in specs and specs[n].feature_service]
    return list(dict.fromkeys(services)) or ["churn_model", "engagement_model"]


def local_services(settings: Settings) -> tuple[Any, dict[str, Any], Any, Any]:
    features = FeatureService(settings.features, model_feature_services(settings))
    models = {name: ModelServer(name, settings.models) for name in scan(settings.models.repo_path)}
    bandit = BanditService(settings.bandit) if settings.bandit.enabled else None
    return features, models, bandit, None
