"""deploy/: the RayService parses, its Serve args are valid Settings, and the pieces
the cluster depends on (HAProxy env, the Redis Secret, the GPU group, probes) are there."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

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
    assert settings.features.backend == "redis" and settings.bandit.backend == "redis"
    assert settings.server.ingress_replicas == "auto"
    assert serve_config["http_options"]["host"] == "0.0.0.0"


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_every_container_has_throughput_env_and_redis_secret(service: dict[str, Any]) -> None:
    for name, container in containers(service).items():
        env = env_of(container)
        assert env["RAY_SERVE_ENABLE_HA_PROXY"] == "1" and env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1", name
        for key in ("REENGAGE_FEATURES__REDIS_URL", "REENGAGE_BANDIT__REDIS_URL"):
            assert env[key] == {"secretKeyRef": {"name": "reengage-redis", "key": "url"}}, (name, key)
        assert "livenessProbe" in container and "readinessProbe" in container, name
        assert "/v2/health/ready" in " ".join(container["readinessProbe"]["exec"]["command"]), name


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
    assert settings.server.topology == "fused" and settings.features.backend == "embedded"
