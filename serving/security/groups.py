"""Route groups: every HTTP route and every KServe v2 gRPC method belongs to exactly one.

health     /v2/health/*, model readiness                    gRPC ServerLive, ServerReady, ModelReady
metadata   /v2, /v2/models/{m}[/versions/{v}[/card]], /v1/models, gRPC ServerMetadata, ModelMetadata
           /openapi.json, /docs, /redoc
inference  /v1/score, /v1/explain, /v1/reengage,            gRPC ModelInfer
           /v1/completions, /v2/models/.../infer
feedback   /v1/feedback, /v1/consent, /v1/consent/{customer_id}
admin      /v2/repository/*, everything under /v1/admin/,   gRPC RepositoryIndex,
           /v1/monitor                                      RepositoryModelLoad/Unload

Classified by path, not by the router's tables, so the check fails closed: any other
path under ``/v1/`` or ``/v2/`` is ``admin`` (a new route is closed until it is given a
group here); paths outside our API (``/-/healthz``) are left to the router. The rules
match a concrete path and the route template alike (``{model_name}`` has no ``/``,
as Starlette's default path parameter).
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

GROUPS: tuple[str, ...] = ("health", "metadata", "inference", "feedback", "admin")
DEFAULT_GROUP = "admin"
API_PREFIXES = ("/v1/", "/v2/")

_M, _V = "/v2/models/{model_name}", "/v2/models/{model_name}/versions/{model_version}"
# (template, group): a template's {param} matches one path segment
_ROUTES: tuple[tuple[str, str], ...] = (
    ("/v2/health/live", "health"),
    ("/v2/health/ready", "health"),
    (_M + "/ready", "health"),
    (_V + "/ready", "health"),
    (_M + "/infer", "inference"),
    (_V + "/infer", "inference"),
    (_M, "metadata"),
    (_V, "metadata"),
    (_V + "/card", "metadata"),
    ("/v2", "metadata"),
    ("/v2/repository/index", "admin"),
    ("/v2/repository/models/{model_name}/load", "admin"),
    ("/v2/repository/models/{model_name}/unload", "admin"),
    ("/v1/score", "inference"),
    ("/v1/explain", "inference"),
    ("/v1/reengage", "inference"),
    ("/v1/completions", "inference"),
    ("/v1/feedback", "feedback"),
    ("/v1/consent", "feedback"),
    ("/v1/consent/{customer_id}", "feedback"),
    ("/v1/models", "metadata"),
    ("/v1/monitor", "admin"),
    ("/openapi.json", "metadata"),
    ("/docs", "metadata"),
    ("/docs/oauth2-redirect", "metadata"),
    ("/redoc", "metadata"),
)
# prefixes whose every path is one group (routes another module adds beneath them)
_PREFIXES: tuple[tuple[str, str], ...] = (("/v1/admin/", "admin"), ("/v2/repository/", "admin"))

# KServe v2 gRPC (tritonclient's GRPCInferenceService) method -> group
GRPC_GROUPS: dict[str, str] = {
    "ServerLive": "health",
    "ServerReady": "health",
    "ModelReady": "health",
    "ServerMetadata": "metadata",
    "ModelMetadata": "metadata",
    "ModelInfer": "inference",
    "RepositoryIndex": "admin",
    "RepositoryModelLoad": "admin",
    "RepositoryModelUnload": "admin",
}


def _compile(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)))


_RULES: tuple[tuple[re.Pattern[str], str, Any], ...] = tuple(
    (_compile(t), g, SimpleNamespace(path=t)) for t, g in _ROUTES
)


def classify(path: str) -> tuple[str, Any] | None:
    """(group, route label) of a path or template; None outside our API (left to the router).
    The label (``.path``: the template) names the route in request metrics."""
    for pattern, group, label in _RULES:
        if pattern.fullmatch(path):
            return group, label
    for prefix, group in _PREFIXES:
        if path.startswith(prefix):
            return group, None
    if path.startswith(API_PREFIXES) or path in ("/v1",):
        return DEFAULT_GROUP, None
    return None


def group_of_path(path: str) -> str | None:
    found = classify(path)
    return None if found is None else found[0]
