"""deploy/k8s, the cluster pieces: features in Redis before the application starts,
PodDisruptionBudgets, the PodMonitor, a restricted securityContext everywhere, GCS fault
tolerance on Redis, and the Redis component's persistence and eviction policy."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy.k8skit import JOBS, OVERLAYS, env_of, groups, one, ray_container, render, service

MATERIALIZE = ["reengage", "build", "--steps", "materialize", "--no-llm"]


def test_features_reach_redis_before_the_application_starts() -> None:
    """An init step of the head: KubeRay sends serveConfigV2 only once the head is Ready,
    which is after its init containers; the refresh Job runs the same command."""
    from serving.build import STEPS

    for target in OVERLAYS:
        head = groups(service(target))["head"]["template"]["spec"]
        [init] = head["initContainers"]
        assert init["command"] == MATERIALIZE and "materialize" in STEPS
        assert init["image"] == ray_container(groups(service(target))["head"])["image"]
        env = env_of(init)
        assert env["REENGAGE_STATE"] == "redis"
        assert env["REENGAGE_REDIS_URL"] == {
            "secretKeyRef": {"name": "reengage-redis", "key": "url"}
        }
    [job] = [d for p in JOBS for d in yaml.safe_load_all(p.read_text()) if d["kind"] == "Job"]
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == MATERIALIZE


def test_the_build_command_of_the_init_step_exists() -> None:
    """The command line parses with the real CLI (``--help`` after the options)."""
    from typer.testing import CliRunner

    from serving.cli import app

    result = CliRunner().invoke(app, [*MATERIALIZE[1:], "--help"])
    assert result.exit_code == 0 and "--steps" in result.output


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    return all(labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", []))


def _pod_labels(name: str, group: dict[str, Any]) -> dict[str, str]:
    """The template's labels plus those KubeRay adds (ray.io/node-type, ray.io/group)."""
    return {
        **group["template"]["metadata"]["labels"],
        "ray.io/node-type": "head" if name == "head" else "worker",
        "ray.io/group": "headgroup" if name == "head" else name,
    }


@pytest.mark.parametrize("target", OVERLAYS)
def test_pdbs_cover_the_head_and_every_worker_group(target: str) -> None:
    docs = render(target)
    head, workers = (
        one(docs, "PodDisruptionBudget", "reengage-head"),
        one(docs, "PodDisruptionBudget", "reengage-workers"),
    )
    assert head["spec"]["maxUnavailable"] == 0 and workers["spec"]["maxUnavailable"] == 1
    for name, group in groups(service(target)).items():
        labels = _pod_labels(name, group)
        assert _selects(head["spec"]["selector"], labels) == (name == "head"), name
        assert _selects(workers["spec"]["selector"], labels) == (name != "head"), name


@pytest.mark.parametrize("target", OVERLAYS)
def test_the_podmonitor_scrapes_the_metrics_port_of_every_ray_pod(target: str) -> None:
    monitor = one(render(target), "PodMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    for name, group in groups(service(target)).items():
        assert _selects(monitor["spec"]["selector"], _pod_labels(name, group)), name
    for doc in render(target):
        if doc["kind"] == "StatefulSet":  # Redis is not a Ray pod
            assert not _selects(
                monitor["spec"]["selector"], doc["spec"]["template"]["metadata"]["labels"]
            )


def _containers_and_pods(target: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(what, container, its pod's securityContext) for every container in ``target``."""
    out = []
    svc = service(target)
    for name, group in groups(svc).items():
        pod = group["template"]["spec"]
        for c in pod.get("initContainers", []) + pod["containers"]:
            out.append((f"{name}/{c['name']}", c, pod.get("securityContext", {})))
    out.append(
        (
            "autoscaler",
            {
                "securityContext": svc["spec"]["rayClusterConfig"]["autoscalerOptions"][
                    "securityContext"
                ]
            },
            groups(svc)["head"]["template"]["spec"]["securityContext"],
        )
    )
    for doc in render(target):
        if doc["kind"] in ("StatefulSet", "Deployment"):
            pod = doc["spec"]["template"]["spec"]
            out += [
                (f"{doc['metadata']['name']}/{c['name']}", c, pod.get("securityContext", {}))
                for c in pod["containers"]
            ]
    return out


@pytest.mark.parametrize("target", OVERLAYS)
def test_every_container_runs_restricted(target: str) -> None:
    """Pod Security Standards "restricted": non-root with a numeric uid, no privilege
    escalation, every capability dropped, the runtime's default seccomp profile."""
    jobs = [d for p in JOBS for d in yaml.safe_load_all(p.read_text())]
    found = _containers_and_pods(target) + [
        (f"job/{c['name']}", c, j["spec"]["template"]["spec"]["securityContext"])
        for j in jobs
        for c in j["spec"]["template"]["spec"]["containers"]
    ]
    assert len(found) >= 4
    for what, container, pod in found:
        sc = {**pod, **container.get("securityContext", {})}
        assert sc.get("runAsNonRoot") is True, what
        assert isinstance(sc.get("runAsUser"), int) and sc["runAsUser"] > 0, what
        assert container.get("securityContext", {}).get("allowPrivilegeEscalation") is False, what
        assert container["securityContext"].get("capabilities", {}).get("drop") == ["ALL"], what
        assert sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", what


@pytest.mark.parametrize("target", OVERLAYS)
def test_gcs_fault_tolerance_on_redis(target: str) -> None:
    """KubeRay's rules (utils/validation.go): with gcsFaultToleranceOptions, no
    RAY_REDIS_ADDRESS or REDIS_PASSWORD env on the head and no redis-password start param."""
    cluster = service(target)["spec"]["rayClusterConfig"]
    ft = cluster["gcsFaultToleranceOptions"]
    host, _, port = ft["redisAddress"].partition(":")
    assert host and port.isdigit()
    assert ft["redisPassword"] == {
        "valueFrom": {"secretKeyRef": {"name": "reengage-redis", "key": "password"}}
    }
    head = cluster["headGroupSpec"]
    assert not {"RAY_REDIS_ADDRESS", "REDIS_PASSWORD", "REDIS_USERNAME"} & set(
        env_of(ray_container(head))
    )
    assert "redis-password" not in head["rayStartParams"]
    assert "ray.io/ft-enabled" not in service(target)["metadata"].get("annotations", {})


def test_the_redis_component_persists_and_never_evicts() -> None:
    docs = render("overlays/cpu")
    conf = one(docs, "ConfigMap", "reengage-redis")["data"]["redis.conf"].splitlines()
    for line in ("appendonly yes", "appendfsync everysec", "maxmemory-policy noeviction"):
        assert line in conf
    sts = one(docs, "StatefulSet", "reengage-redis")
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert one(docs, "Service", "reengage-redis")["spec"]["ports"][0]["port"] == 6379
    address = service("overlays/cpu")["spec"]["rayClusterConfig"]["gcsFaultToleranceOptions"][
        "redisAddress"
    ]
    assert address == "reengage-redis:6379"
    redis = sts["spec"]["template"]["spec"]["containers"][0]
    assert (
        "--requirepass" in redis["command"]
        and env_of(redis)["REDIS_PASSWORD"]["secretKeyRef"]["key"] == "password"
    )
