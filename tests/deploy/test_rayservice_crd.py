"""Every rendered RayService validates against KubeRay's own RayService CRD schema (the
``openAPIV3Schema`` of ray.io/v1, vendored from the releases in ``crdschema.KUBERAY``),
with the API server's structural pruning emulated: a field the CRD does not name fails,
so a typo cannot be dropped silently by the cluster. Beside it, the choices the CRD
leaves open that deploy/k8s relies on.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from tests.deploy.crdschema import KUBERAY, errors, vendored
from tests.deploy.k8skit import OVERLAYS, groups, render, service


@pytest.mark.parametrize("release", KUBERAY)
@pytest.mark.parametrize("target", ("base", *OVERLAYS))
def test_every_rendered_rayservice_validates_against_the_crd(target: str, release: str) -> None:
    [svc] = [d for d in render(target) if d["kind"] == "RayService"]
    assert (svc["apiVersion"], svc["kind"]) == (
        f"{vendored(release)['group']}/{vendored(release)['version']}",
        "RayService",
    )
    assert errors(svc, release) == []


def _with(svc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``svc`` with ``value`` set at the dotted ``path`` (list indices as digits)."""
    out = copy.deepcopy(svc)
    *parents, last = path.split(".")
    node: Any = out
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    node[int(last) if last.isdigit() else last] = value
    return out


TYPOS = {
    "spec.serveConfigV3": "x",  # a misspelt top-level field
    "spec.rayClusterConfig.enableInTreeAutoscalling": True,
    "spec.rayClusterConfig.headGroupSpec.rayStartParam": {},
    "spec.rayClusterConfig.workerGroupSpecs.0.minReplica": 1,
    "spec.rayClusterConfig.gcsFaultToleranceOptions.redisAdress": "redis:6379",
    "spec.rayClusterConfig.workerGroupSpecs.0.template.spec.containers.0.securityContxt": {},
    "spec.rayClusterConfig.headGroupSpec.template.spec.containers.0.resources.limit": {},
}
WRONG = {
    "spec.rayClusterConfig.workerGroupSpecs.0.maxReplicas": "4",  # a string for an int32
    "spec.rayClusterConfig.authOptions.mode": "password",  # not in the enum
    "spec.rayClusterConfig.headGroupSpec.rayStartParams.num-cpus": 0,  # map[string]string
    "spec.rayClusterConfig.headGroupSpec.template.spec.containers.0.ports.0.containerPort": "x",
    "spec.rayClusterConfig.headGroupSpec.template.spec.containers.0.resources.limits.cpu": "2x",
}


@pytest.mark.parametrize("release", KUBERAY)
@pytest.mark.parametrize("path", [*TYPOS, *WRONG])
def test_a_typo_or_a_wrong_type_in_a_rayservice_fails(path: str, release: str) -> None:
    svc = service("overlays/cpu")
    broken = _with(svc, path, {**TYPOS, **WRONG}[path])
    found = errors(broken, release)
    assert found, f"{path} passed the {release} CRD"
    where = path.rsplit(".", 1)[0] if path in TYPOS else path
    assert any(e.startswith(where + ":") for e in found), found


def test_a_missing_required_field_fails() -> None:
    svc = copy.deepcopy(service("overlays/cpu"))
    del svc["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["groupName"]
    assert any("'groupName' is a required property" in e for e in errors(svc, KUBERAY[0]))


def test_the_vendored_schemas_say_where_they_came_from() -> None:
    for release in KUBERAY:
        doc = vendored(release)
        assert doc["kuberay"] == release and re.fullmatch(r"[0-9a-f]{40}", doc["commit"])
        assert doc["source"].endswith("/ray-operator/config/crd/bases/ray.io_rayservices.yaml")
        assert doc["commit"] in doc["source"] and "Apache-2.0" in doc["license"]


# ------------------------------------------------------------------ what the CRD leaves open
UPGRADE_TYPES = {"NewCluster", "None"}  # and v1.7's NewClusterWithIncrementalUpgrade (a Gateway)


@pytest.mark.parametrize("target", OVERLAYS)
def test_the_rayservice_choices_deploy_k8s_relies_on(target: str) -> None:
    svc = service(target)
    spec = svc["spec"]
    assert spec["upgradeStrategy"]["type"] in UPGRADE_TYPES  # a free string in the CRD
    cluster = spec["rayClusterConfig"]
    assert cluster["authOptions"] == {"mode": "token"}  # every Ray port needs the token
    assert cluster["enableInTreeAutoscaling"] is True
    assert {"redisAddress"} <= set(cluster["gcsFaultToleranceOptions"])  # GCS survives the head
    assert set(groups(svc)) >= {"head", "cpu"}
