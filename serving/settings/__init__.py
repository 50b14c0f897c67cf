"""The one settings object, ``Settings`` (pydantic-settings, ``REENGAGE_*``, nested ``__``).

One module per concern: ``base`` (project root, log rotation), ``server`` (server and
auth), ``features`` (data and online features), ``models`` (scoring models and their
traffic policies), ``bandit``, ``llm``, ``privacy`` (personal data and the monitor), and
``loading`` (``Settings`` itself, its cross-section rules and ``load_settings``). Import
from here: ``from serving.settings import Settings``.
"""

from serving.settings.bandit import BanditSettings
from serving.settings.base import RotationSettings, Section, project_root
from serving.settings.features import DataSettings, FeatureSettings
from serving.settings.llm import LLMSettings
from serving.settings.loading import Settings, load_settings
from serving.settings.models import (
    ModelSettings,
    TrafficCandidate,
    TrafficPolicyConfig,
    TrafficShadow,
)
from serving.settings.privacy import MonitorSettings, PrivacySettings
from serving.settings.server import (
    ROUTE_GROUPS,
    AuthGroups,
    AuthSettings,
    AuthToken,
    RouteGroup,
    ServerSettings,
)

__all__ = [
    "ROUTE_GROUPS",
    "AuthGroups",
    "AuthSettings",
    "AuthToken",
    "BanditSettings",
    "DataSettings",
    "FeatureSettings",
    "LLMSettings",
    "ModelSettings",
    "MonitorSettings",
    "PrivacySettings",
    "RotationSettings",
    "RouteGroup",
    "Section",
    "ServerSettings",
    "Settings",
    "TrafficCandidate",
    "TrafficPolicyConfig",
    "TrafficShadow",
    "load_settings",
    "project_root",
]
