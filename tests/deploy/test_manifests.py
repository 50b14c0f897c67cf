"""deploy/: the RayService parses, its Serve args are valid Settings, and the pieces
the cluster depends on (HAProxy env, the Redis Secret, the GPU group, probes) are there."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from serving.server import HAPROXY_ENV
from serving.settings import load_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.fixture(scope="module")
def service() -> dict[str, Any]:
    docs = list(yaml.safe_load_all((DEPLOY / "rayservice.yaml").read_text()))
    assert len(docs) == 1
    return docs[0]


@pytest.fixture(scope="module")
def serve_config(service: dict[str, Any]) -> dict[str, Any]:
    return yaml.safe_load(service["spec"]["serveConfigV2"])


def containers(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    cluster = service["spec"]["rayClusterConfig"]
    out = {"head": cluster["headGroupSpec"]["template"]["spec"]["containers"][0]}
    for group in cluster["workerGroupSpecs"]:
        out[group["groupName"]] = group["template"]["spec"]["containers"][0]
    return out


def test_kind_and_versions(service: dict[str, Any]) -> None:
    assert (service["apiVersion"], service["kind"]) == ("ray.io/v1", "RayService")
    assert service["spec"]["rayClusterConfig"]["rayVersion"] == "2.60.0"
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", (DEPLOY / "Dockerfile").read_text(), re.M)
    assert base and base.group(1) == "rayproject/ray:2.60.0-py311"


def test_serve_application_args_are_valid_settings(serve_config: dict[str, Any]) -> None:
    (app,) = serve_config["applications"]
    assert app["import_path"] == "serving.app:build_app"
    settings = load_settings(app["args"])  # raises on any unknown or ill-typed setting
    assert settings.state == "redis" and settings.features.backend == "redis" == settings.bandit.backend
    assert settings.server.ingress_replicas == "auto"
    assert serve_config["http_options"]["host"] == "0.0.0.0"


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_every_container_has_throughput_env_and_redis_secret(service: dict[str, Any]) -> None:
    for name, container in containers(service).items():
        env = env_of(container)
        for key, value in HAPROXY_ENV.items():  # the same ingress settings `reengage serve` uses
            assert env.get(key) == value, (name, key)
        assert env["RAY_SERVE_HAPROXY_METRICS_ENABLED"] == "0", name  # server.haproxy_metrics' default
        assert env["REENGAGE_STATE"] == "redis", name  # features and bandit together
        assert env["REENGAGE_REDIS_URL"] == {"secretKeyRef": {"name": "reengage-redis", "key": "url"}}, name
        assert "livenessProbe" in container and "readinessProbe" in container, name


def probe_text(probe: dict[str, Any]) -> str:
    if "httpGet" in probe:
        return f"http://localhost:{probe['httpGet']['port']}{probe['httpGet']['path']}"
    return " ".join(probe["exec"]["command"])


def test_head_probes_are_independent_of_serve(service: dict[str, Any]) -> None:
    """KubeRay sends serveConfigV2 only once the head pod is Ready: a head probe that waits
    for the application would never let it be deployed."""
    head = containers(service)["head"]
    for kind in ("livenessProbe", "readinessProbe"):
        text = probe_text(head[kind])
        assert ":52365/api/healthz" in text, (kind, text)  # KubeRay's, Ray >= 2.53
        assert ":8000" not in text and "/v2/" not in text and "-/healthz" not in text, (kind, text)


def test_worker_probes_follow_kuberay(service: dict[str, Any]) -> None:
    """KubeRay's RayService worker readiness (pod.go initLivenessAndReadinessProbe): raylet
    health and the pod's own Serve proxy /-/healthz, failureThreshold 1; never the
    application's readiness, which goes through the proxy to any replica."""
    for name, container in containers(service).items():
        if name == "head":
            continue
        ready = container["readinessProbe"]
        text = probe_text(ready)
        assert "localhost:52365/api/local_raylet_healthz | grep success" in text, name
        assert "localhost:8000/-/healthz | grep success" in text, name
        assert "/v2/health/ready" not in text and ready["failureThreshold"] == 1, name
        assert probe_text(container["livenessProbe"]) == "http://localhost:52365/api/healthz", name
        assert container["livenessProbe"]["failureThreshold"] == 120, name


DEPRECATED = {"serviceUnhealthySecondThreshold", "deploymentUnhealthySecondThreshold"}  # kuberay#1685: ignored


def test_no_deprecated_fields(service: dict[str, Any]) -> None:
    def keys(node: Any) -> set[str]:
        if isinstance(node, dict):
            return set(node) | {k for v in node.values() for k in keys(v)}
        if isinstance(node, list):
            return {k for v in node for k in keys(v)}
        return set()

    assert not keys(service) & DEPRECATED


def test_grpc_is_configured_everywhere(serve_config: dict[str, Any]) -> None:
    from serving.server import GRPC_SERVICER

    for config in (serve_config, yaml.safe_load((DEPLOY / "serve.yaml").read_text())):
        grpc = config["grpc_options"]
        assert grpc["port"] == 9000 and grpc["grpc_servicer_functions"] == [GRPC_SERVICER]


def _dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders wins."""
    import fnmatch

    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw.lstrip("!").strip("/")
        pattern = pattern.replace("**/", "*")  # enough for the patterns in use
        if any(fnmatch.fnmatchcase(p, pattern) for p in prefixes):
            ignored = not negate
    return ignored


def test_images_are_built_without_local_data() -> None:
    root = DEPLOY.parent
    patterns = [line.strip() for line in (root / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for local in ("data/bandit/state.sqlite", "feature_store/data/registry.db", "feature_store/data/online_store.lmdb/data.mdb",
                  "model_repo/churn/3/model.onnx", "model_repo/email_writer/model.safetensors", ".venv/bin/python",
                  ".git/HEAD", "serving/__pycache__/app.cpython-311.pyc"):
        assert _dockerignored(local, patterns), local
    for needed in ("serving/app.py", "feature_store/definitions.py", "feature_store/feature_store.yaml",
                   "model_repo/training/churn.py", "model_repo/__init__.py", "deploy/serve.yaml", "pyproject.toml",
                   "README.md", "loadtests/locustfile.py"):
        assert not _dockerignored(needed, patterns), needed
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert 'BUILD_FLAGS=""' in dockerfile  # the GPU image's command keeps the email writer


def test_groups_and_autoscaling(service: dict[str, Any]) -> None:
    cluster = service["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}
    for group in groups.values():
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    gpu = containers(service)["gpu"]["resources"]
    assert gpu["limits"]["nvidia.com/gpu"] == 1 == gpu["requests"]["nvidia.com/gpu"]
    assert "nvidia.com/gpu" not in containers(service)["cpu"]["resources"]["limits"]


def test_serve_yaml_is_a_valid_serve_config_with_valid_args() -> None:
    from ray.serve.schema import ServeDeploySchema

    config = yaml.safe_load((DEPLOY / "serve.yaml").read_text())
    schema = ServeDeploySchema.model_validate(config) if hasattr(ServeDeploySchema, "model_validate") \
        else ServeDeploySchema.parse_obj(config)
    [app] = schema.applications
    assert app.import_path == "serving.app:build_app" and app.route_prefix == "/"
    settings = load_settings(app.args)  # a typo in a setting fails here
    assert settings.server.topology == "fused" and settings.state == "embedded"
