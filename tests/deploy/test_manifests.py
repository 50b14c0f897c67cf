"""deploy/k8s: every overlay renders (kustomize, the one in kubectl from the `test` extra),
every manifest validates against the Kubernetes schemas (kubernetes-validate, offline,
strict: no unknown field), and each overlay's serve config loads into Settings and gives
the deployments the resources the cluster has.

The RayService is validated against our compact RayService schema in
test_rayservice_crd.py; its pod templates, which the CRD embeds as Kubernetes
PodTemplateSpecs, are checked here by the Kubernetes schema itself too.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from serving.server import HAPROXY_ENV, PROXY_HEADERS_ENV
from serving.settings import load_settings
from tests.deploy.k8skit import (
    DEPLOY,
    JOBS,
    OVERLAYS,
    RAY_CONTAINER,
    env_of,
    groups,
    ray_container,
    render,
    serve_config,
    service,
    settings_of,
)


def test_every_overlay_renders_with_the_pieces_it_promises() -> None:
    base = {d["kind"] for d in render("base")}
    assert base == {"RayService", "PodDisruptionBudget", "PodMonitor"}
    assert {d["kind"] for d in render("overlays/cpu")} == base | {
        "ConfigMap",
        "Service",
        "StatefulSet",
    }
    assert {d["kind"] for d in render("overlays/gpu")} == base  # an external Redis
    assert set(groups(service("overlays/cpu"))) == {"head", "cpu"}
    assert set(groups(service("overlays/gpu"))) == {"head", "cpu", "gpu"}


# ------------------------------------------------------------------ Kubernetes schemas
def _validate(doc: dict[str, Any]) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def _as_pod_template(template: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PodTemplate",
        "metadata": {"name": "check"},
        "template": template,
    }


@pytest.mark.parametrize("target", ("base", *OVERLAYS))
def test_every_manifest_validates_against_the_kubernetes_schemas(target: str) -> None:
    for doc in render(target):
        if doc["apiVersion"].startswith(("ray.io/", "monitoring.coreos.com/")):
            continue  # custom resources: the RayService in test_rayservice_crd.py
        _validate(doc)
    svc = service(target)
    for name, group in groups(svc).items():
        _validate(_as_pod_template(group["template"]))  # the CRD embeds a PodTemplateSpec
    autoscaler = {
        "name": "autoscaler",
        "securityContext": svc["spec"]["rayClusterConfig"]["autoscalerOptions"]["securityContext"],
    }
    _validate(_as_pod_template({"spec": {"containers": [autoscaler]}}))


def test_the_jobs_validate() -> None:
    assert JOBS
    for path in JOBS:
        for doc in yaml.safe_load_all(path.read_text()):
            named = {
                **doc,
                "metadata": {**doc["metadata"], "name": "check"},
            }  # generateName: `kubectl create`
            _validate(named)


def test_a_typo_fails_the_schema_check() -> None:
    """The check above can fail: strict schemas refuse an unknown field in a pod template."""
    import kubernetes_validate

    template = json.loads(json.dumps(ray_container(groups(service("overlays/cpu"))["cpu"])))
    template["securityContxt"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(_as_pod_template({"spec": {"containers": [template]}}))


def test_kind_and_versions() -> None:
    assert service("overlays/cpu")["spec"]["rayClusterConfig"]["rayVersion"] == "2.60.0"
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", (DEPLOY / "Dockerfile").read_text(), re.M)
    assert base and base.group(1) == "rayproject/ray:2.60.0-py311"


# ------------------------------------------------------------------ the serve config
@pytest.mark.parametrize("target", OVERLAYS)
def test_serve_config_is_valid_and_its_args_load_into_settings(target: str) -> None:
    from ray.serve.schema import ServeDeploySchema

    config = serve_config(target)
    [app] = ServeDeploySchema.model_validate(config).applications
    assert app.import_path == "serving.app:build_app"
    settings = load_settings(app.args)  # raises on any unknown or ill-typed setting
    assert (
        settings.state == "redis"
        and settings.features.backend == "redis" == settings.bandit.backend
    )
    assert (
        settings.server.ingress_replicas == "auto" and config["http_options"]["host"] == "0.0.0.0"
    )
    assert settings.llm.num_gpus is not None, "explicit: build_app runs on the CPU head"
    assert settings.auth.bootstrap_admin is False


def test_the_gpu_overlay_changes_only_the_email_writer() -> None:
    cpu, gpu = serve_config("overlays/cpu"), serve_config("overlays/gpu")
    cpu_llm = cpu["applications"][0]["args"].pop("llm")
    gpu_llm = gpu["applications"][0]["args"].pop("llm")
    assert cpu == gpu
    assert (cpu_llm["enabled"], cpu_llm["num_gpus"]) == (False, 0)
    assert (gpu_llm["enabled"], gpu_llm["backend"], gpu_llm["num_gpus"]) == (True, "vllm", 1)


def test_the_writer_takes_its_gpus_from_the_settings_on_a_cpu_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``options_for`` runs where build_app runs (the CPU head): no GPU there, one for the
    writer."""
    from serving.deployments.components import WriterDeployment
    from serving.llm import backends

    monkeypatch.setattr(backends, "gpu_available", lambda: False)  # build_app on the CPU head
    options = WriterDeployment.options_for(settings_of("overlays/gpu"))
    assert options["ray_actor_options"]["num_gpus"] == 1


@pytest.mark.parametrize("target", OVERLAYS)
def test_scoring_replicas_stay_off_the_gpu_pods(target: str) -> None:
    """Ingress (and split's components) ask for a custom resource only the cpu group offers;
    the writer asks for GPUs, which only the gpu group has; the head takes no replica."""
    from serving.deployments.components import BanditDeployment, FeatureDeployment
    from serving.deployments.ingress import Ingress

    settings = settings_of(target)
    wanted = settings.server.replica_resources
    assert wanted
    for options in (
        Ingress.options_for(settings),
        FeatureDeployment.options_for(settings),
        BanditDeployment.options_for(settings),
    ):
        assert options["ray_actor_options"]["resources"] == wanted
    found = groups(service(target))
    offering = {name for name, g in found.items() if set(wanted) <= set(g.get("resources", {}))}
    assert offering == {"cpu"}
    assert all(float(found["cpu"]["resources"][k]) >= 100 * v for k, v in wanted.items())
    assert found["head"]["rayStartParams"]["num-cpus"] == "0"
    if "gpu" in found:
        limits = ray_container(found["gpu"])["resources"]["limits"]
        assert limits["nvidia.com/gpu"] == 1 == settings.llm.num_gpus
    assert "nvidia.com/gpu" not in ray_container(found["cpu"])["resources"]["limits"]


# ------------------------------------------------------------------ ports, env, probes
@pytest.mark.parametrize("target", OVERLAYS)
def test_serve_ports_are_on_the_serve_service(target: str) -> None:
    """KubeRay builds the serve Service from the head container's ports named ``serve`` or
    ``serve-*`` (common/service.go, isServingPort); gRPC is ``serve-grpc``."""
    config = serve_config(target)
    for name, group in groups(service(target)).items():
        ports = {p["name"]: p["containerPort"] for p in ray_container(group)["ports"]}
        assert ports["serve"] == config["http_options"]["port"], name
        assert ports["serve-grpc"] == config["grpc_options"]["port"] == 9000, name
        assert "grpc" not in ports, name
        assert ports["metrics"] == load_settings({}).server.metrics_port, name


@pytest.mark.parametrize("target", OVERLAYS)
def test_every_ray_container_has_throughput_env_redis_and_the_token_secret(target: str) -> None:
    for name, group in groups(service(target)).items():
        container = ray_container(group)
        assert container["name"] == RAY_CONTAINER[name]
        env = env_of(container)
        # the same ingress settings `reengage serve` uses
        for key, value in {**HAPROXY_ENV, **PROXY_HEADERS_ENV}.items():
            assert env.get(key) == value, (name, key)
        assert env["RAY_SERVE_HAPROXY_METRICS_ENABLED"] == "0", name
        assert env["REENGAGE_STATE"] == "redis", name
        assert env["REENGAGE_REDIS_URL"] == {
            "secretKeyRef": {"name": "reengage-redis", "key": "url"}
        }, name
        assert env["REENGAGE_AUTH__TOKENS"] == {
            "secretKeyRef": {"name": "reengage-auth", "key": "tokens"}
        }, name


FIRST_TOKEN = "# the first admin token: made here, only its hash goes to the cluster"


def test_the_first_admin_token_as_docs_cluster_md_makes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/cluster.md's shell block, run as written (``kubectl`` replaced by a function that
    prints the Secret's value): the value loads as auth.tokens with the overlay's args, and
    the token the block saved is the admin."""
    from serving.security import Authenticator, TokenStore

    doc = (DEPLOY.parent / "docs" / "cluster.md").read_text()
    block = doc.split(FIRST_TOKEN, 1)[1].split("```", 1)[0]
    fake = """kubectl() {
  for a in "$@"; do
    case "$a" in --from-literal=tokens=*) printf '%s' "${a#*=tokens=}" > secret.json;; esac
  done
}
"""
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", fake + block],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    monkeypatch.setenv("REENGAGE_AUTH__TOKENS", (tmp_path / "secret.json").read_text())
    settings = settings_of("overlays/cpu")
    assert settings.auth.bootstrap_admin is False and settings.auth.groups.admin == "token"
    token = (tmp_path / "reengage-admin.token").read_text().strip()
    assert token.startswith("rng_") and token not in (tmp_path / "secret.json").read_text()
    auth = Authenticator(settings, store=TokenStore(settings.auth.tokens))
    assert auth.check("admin", f"Bearer {token}").name == "admin"


def probe_text(probe: dict[str, Any]) -> str:
    if "httpGet" in probe:
        return f"http://localhost:{probe['httpGet']['port']}{probe['httpGet']['path']}"
    return " ".join(probe["exec"]["command"])


def test_head_probes_are_independent_of_serve() -> None:
    """KubeRay sends serveConfigV2 only once the head pod is Ready: a head probe that waits
    for the application would never let it be deployed."""
    head = ray_container(groups(service("overlays/gpu"))["head"])
    for kind in ("livenessProbe", "readinessProbe"):
        text = probe_text(head[kind])
        assert ":52365/api/healthz" in text, (kind, text)  # KubeRay's, Ray >= 2.53
        assert ":8000" not in text and "/v2/" not in text and "-/healthz" not in text, (kind, text)


def test_worker_probes_follow_kuberay() -> None:
    """KubeRay's RayService worker readiness (pod.go initLivenessAndReadinessProbe): raylet
    health and the pod's own Serve proxy /-/healthz, failureThreshold 1; never the
    application's readiness, which goes through the proxy to any replica."""
    for name, group in groups(service("overlays/gpu")).items():
        if name == "head":
            continue
        container = ray_container(group)
        ready = container["readinessProbe"]
        text = probe_text(ready)
        assert "localhost:52365/api/local_raylet_healthz | grep success" in text, name
        assert "localhost:8000/-/healthz | grep success" in text, name
        assert "/v2/health/ready" not in text and ready["failureThreshold"] == 1, name
        assert probe_text(container["livenessProbe"]) == "http://localhost:52365/api/healthz", name
        assert container["livenessProbe"]["failureThreshold"] == 120, name


DEPRECATED = {
    "serviceUnhealthySecondThreshold",
    "deploymentUnhealthySecondThreshold",
}  # kuberay#1685: ignored


def test_no_deprecated_fields() -> None:
    def keys(node: Any) -> set[str]:
        if isinstance(node, dict):
            return set(node) | {k for v in node.values() for k in keys(v)}
        if isinstance(node, list):
            return {k for v in node for k in keys(v)}
        return set()

    for target in OVERLAYS:
        assert not keys(service(target)) & DEPRECATED


def test_grpc_is_configured_everywhere() -> None:
    from serving.server import GRPC_SERVICER

    for config in (
        serve_config("overlays/cpu"),
        serve_config("overlays/gpu"),
        yaml.safe_load((DEPLOY / "serve.yaml").read_text()),
    ):
        grpc = config["grpc_options"]
        assert grpc["port"] == 9000 and grpc["grpc_servicer_functions"] == [GRPC_SERVICER]


# ------------------------------------------------------------------ images and serve.yaml
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
    patterns = [
        line.strip()
        for line in (root / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for local in (
        "data/bandit/state.sqlite",
        "feature_store/data/registry.db",
        "feature_store/data/online_store.lmdb/data.mdb",
        "model_repo/churn/3/model.onnx",
        "model_repo/email_writer/model.safetensors",
        ".venv/bin/python",
        ".git/HEAD",
        "serving/__pycache__/app.cpython-311.pyc",
    ):
        assert _dockerignored(local, patterns), local
    for needed in (
        "serving/app.py",
        "feature_store/definitions.py",
        "feature_store/feature_store.yaml",
        "model_repo/training/churn.py",
        "model_repo/__init__.py",
        "deploy/serve.yaml",
        "pyproject.toml",
        "README.md",
        "loadtests/locustfile.py",
    ):
        assert not _dockerignored(needed, patterns), needed
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert 'BUILD_FLAGS=""' in dockerfile  # the GPU image's command keeps the email writer
    images = {ray_container(g)["image"] for g in groups(service("overlays/gpu")).values()}
    assert images == {"reengage:0.1.0", "reengage:0.1.0-gpu"}


def test_serve_yaml_is_a_valid_serve_config_with_valid_args() -> None:
    from ray.serve.schema import ServeDeploySchema

    config = yaml.safe_load((DEPLOY / "serve.yaml").read_text())
    [app] = ServeDeploySchema.model_validate(config).applications
    assert app.import_path == "serving.app:build_app" and app.route_prefix == "/"
    settings = load_settings(app.args)  # a typo in a setting fails here
    assert settings.server.topology == "fused" and settings.state == "embedded"
