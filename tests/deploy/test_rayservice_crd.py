"""Every rendered RayService validates against our own compact RayService schema
(rayservice_schema.py: the fields KubeRay >= 1.5.1 accepts, structural pruning as
``additionalProperties: false``), its pod templates against Kubernetes' strict schemas,
so a typo the API server would silently drop fails here, with no network and no copy of
KubeRay's CRD. The operator's tool (crdschema.py: a real CRD, converted with the API
server's rules) is tested on a small CRD written here.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import crdschema
from tests.deploy.k8skit import OVERLAYS, groups, render, service
from tests.deploy.rayservice_schema import errors


@pytest.mark.parametrize("target", ("base", *OVERLAYS))
def test_every_rendered_rayservice_validates_against_our_schema(target: str) -> None:
    [svc] = [d for d in render(target) if d["kind"] == "RayService"]
    assert errors(svc) == []


def _with(svc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``svc`` with ``value`` set at the dotted ``path`` (list indices as digits)."""
    out = copy.deepcopy(svc)
    *parents, last = path.split(".")
    node: Any = out
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    node[int(last) if last.isdigit() else last] = value
    return out


def _without(svc: dict[str, Any], path: str) -> dict[str, Any]:
    out = copy.deepcopy(svc)
    *parents, last = path.split(".")
    node: Any = out
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    del node[int(last) if last.isdigit() else last]
    return out


CLUSTER = "spec.rayClusterConfig"
HEAD_CONTAINER = f"{CLUSTER}.headGroupSpec.template.spec.containers.0"
WORKER_CONTAINER = f"{CLUSTER}.workerGroupSpecs.0.template.spec.containers.0"
TYPOS = {  # a misspelt field at every depth: the parent is named in the error
    "spec.serveConfigV3": "x",
    "spec.upgradeStrategy.typ": "NewCluster",
    f"{CLUSTER}.enableInTreeAutoscalling": True,
    f"{CLUSTER}.authOptions.mod": "token",
    f"{CLUSTER}.autoscalerOptions.idleTimeoutSecond": 60,
    f"{CLUSTER}.headGroupSpec.rayStartParam": {},
    f"{CLUSTER}.workerGroupSpecs.0.minReplica": 1,
    f"{CLUSTER}.gcsFaultToleranceOptions.redisAdress": "redis:6379",
    f"{CLUSTER}.gcsFaultToleranceOptions.redisPassword.valueFrom.secretKeyRefs": {},
    f"{CLUSTER}.headGroupSpec.template.spec.initContainer": [],
    f"{WORKER_CONTAINER}.securityContxt": {},
    f"{HEAD_CONTAINER}.resources.limit": {},
    f"{CLUSTER}.autoscalerOptions.securityContext.runAsNonroot": True,
}
WRONG = {  # a wrong type or a value outside an enum: the field itself is named
    f"{CLUSTER}.workerGroupSpecs.0.maxReplicas": "4",  # a string for an integer
    f"{CLUSTER}.workerGroupSpecs.0.minReplicas": -1,
    f"{CLUSTER}.authOptions.mode": "password",
    f"{CLUSTER}.autoscalerOptions.upscalingMode": "Fast",
    "spec.upgradeStrategy.type": "Rolling",
    f"{CLUSTER}.enableInTreeAutoscaling": "true",
    f"{CLUSTER}.headGroupSpec.rayStartParams.num-cpus": 0,  # map[string]string
    f"{CLUSTER}.workerGroupSpecs.0.resources.scoring": 1000,
    "spec.serveConfigV2": {"applications": []},  # YAML as a string, not an object
    "apiVersion": "ray.io/v1alpha1",
    f"{HEAD_CONTAINER}.ports.0.containerPort": "x",
    f"{WORKER_CONTAINER}.imagePullPolicy": 1,
}
MISSING = (  # required fields
    f"{CLUSTER}.workerGroupSpecs.0.groupName",
    f"{CLUSTER}.workerGroupSpecs.0.template",
    f"{CLUSTER}.headGroupSpec.template",
    f"{CLUSTER}.gcsFaultToleranceOptions.redisAddress",
    "spec.rayClusterConfig",
    f"{HEAD_CONTAINER}.name",  # Kubernetes': a container has a name
)


@pytest.mark.parametrize("path", [*TYPOS, *WRONG])
def test_a_typo_or_a_wrong_type_fails(path: str) -> None:
    broken = _with(service("overlays/gpu"), path, {**TYPOS, **WRONG}[path])
    found = errors(broken)
    where = path.rsplit(".", 1)[0] if path in TYPOS else path
    assert any(e.startswith(where + ":") for e in found), (path, found)


@pytest.mark.parametrize("path", MISSING)
def test_a_missing_required_field_fails(path: str) -> None:
    parent, name = path.rsplit(".", 1)
    found = errors(_without(service("overlays/gpu"), path))
    assert any(e.startswith(parent + ":") and repr(name) in e for e in found), (path, found)


def test_a_field_only_newer_kuberay_knows_fails() -> None:
    """deploy/k8s supports KubeRay 1.5.1, whose API server drops what it does not name."""
    svc = _with(service("overlays/cpu"), "spec.rayClusterConfig.authOptions.secretName", "s")
    assert errors(svc) == [
        f"{CLUSTER}.authOptions: Additional properties are not allowed "
        "('secretName' was unexpected)"
    ]


# ------------------------------------------------------------------ what the CRD leaves open
@pytest.mark.parametrize("target", OVERLAYS)
def test_the_rayservice_choices_deploy_k8s_relies_on(target: str) -> None:
    spec = service(target)["spec"]
    assert spec["upgradeStrategy"]["type"] == "NewCluster"  # no Gateway needed
    cluster = spec["rayClusterConfig"]
    assert cluster["authOptions"] == {"mode": "token"}  # every Ray port needs the token
    assert cluster["enableInTreeAutoscaling"] is True
    assert {"redisAddress"} <= set(cluster["gcsFaultToleranceOptions"])  # GCS survives the head
    assert set(groups(service(target))) >= {"head", "cpu"}
    for name, group in groups(service(target)).items():
        if name != "head":
            assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"], name


# ------------------------------------------------------------------ the operator's tool
def _small_crd() -> dict[str, Any]:
    """A CustomResourceDefinition of RayService, small, with each extension crdschema rewrites."""
    spec_schema = {
        "type": "object",
        "required": ["rayClusterConfig"],
        "properties": {
            "serveConfigV2": {"type": "string"},
            "rayClusterConfig": {
                "type": "object",
                "properties": {
                    "rayVersion": {"type": "string"},
                    "port": {"x-kubernetes-int-or-string": True, "type": "string"},
                    "annotations": {"type": "string", "nullable": True},
                    "headGroupSpec": {
                        "type": "object",
                        "properties": {"template": {"type": "object"}},
                        "x-kubernetes-preserve-unknown-fields": True,
                    },
                },
            },
        },
    }
    root = {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
        },
    }
    version = {"name": "v1", "served": True, "storage": True}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "rayservices.ray.io"},
        "spec": {
            "group": "ray.io",
            "names": {"kind": "RayService", "plural": "rayservices"},
            "versions": [
                {**version, "name": "v1alpha1", "storage": False, "schema": {}},
                {**version, "schema": {"openAPIV3Schema": root}},
            ],
        },
        "status": {"storedVersions": ["v1"]},  # as `kubectl get crd -o yaml` shows it
    }


def _small_errors(cluster: dict[str, Any], **spec: Any) -> list[str]:
    _, validator = crdschema.crd_validator(_small_crd())
    doc = {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": "x"},
        "spec": {"rayClusterConfig": cluster, **spec},
    }
    return crdschema.errors(doc, validator)


def test_structural_pruning_refuses_an_unnamed_field() -> None:
    assert _small_errors({"rayVersion": "2.60.0"}, serveConfigV2="x") == []
    assert _small_errors({"rayVerison": "2.60.0"}) == [
        "spec.rayClusterConfig: Additional properties are not allowed ('rayVerison' was unexpected)"
    ]
    assert _small_errors({}, serveConfigV3="x")[0].startswith("spec: Additional properties")


def test_preserve_unknown_fields_keeps_an_object_open() -> None:
    assert _small_errors({"headGroupSpec": {"template": {}, "anything": 1}}) == []


def test_int_or_string_takes_either_and_nothing_else() -> None:
    assert _small_errors({"port": 8000}) == _small_errors({"port": "serve"}) == []
    assert _small_errors({"port": 1.5}) and _small_errors({"port": None})


def test_nullable_allows_null_beside_its_type() -> None:
    assert _small_errors({"annotations": None}) == _small_errors({"annotations": "a"}) == []
    assert _small_errors({"annotations": 1})
    assert _small_errors({"rayVersion": None})  # not nullable


def test_the_tool_reads_a_crd_file_and_an_open_api_schema_alone(tmp_path: Path) -> None:
    crd = _small_crd()
    as_yaml = tmp_path / "crd.yaml"
    as_yaml.write_text(yaml.safe_dump(crd))
    schema = crd["spec"]["versions"][1]["schema"]
    as_json = tmp_path / "schema.json"
    as_json.write_text(yaml.safe_dump({"group": "ray.io", "version": "v1", **schema}))
    for path in (as_yaml, as_json):
        api, _ = crdschema.crd_validator(crdschema.load(path))
        assert api == "ray.io/v1"
    with pytest.raises(ValueError, match="not RayService"):
        crdschema.open_api_schema({**crd, "spec": {**crd["spec"], "names": {"kind": "RayJob"}}})


def test_the_tool_prints_each_overlay_and_fails_on_any_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crd = tmp_path / "crd.yaml"
    crd.write_text(yaml.safe_dump(_small_crd()))
    good = {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": "x"},
        "spec": {"rayClusterConfig": {"rayVersion": "2.60.0"}},
    }
    bad = _with(good, "spec.rayClusterConfig.rayVerison", "2.60.0")
    (tmp_path / "good.yaml").write_text(yaml.safe_dump(good))
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump_all([{"kind": "ConfigMap"}, bad]))
    assert crdschema.main([str(crd), str(tmp_path / "good.yaml")]) == 0
    assert crdschema.main([str(crd), str(tmp_path / "good.yaml"), str(tmp_path / "bad.yaml")]) == 1
    out = capsys.readouterr().out
    assert f"ok  {tmp_path / 'good.yaml'}" in out and f"FAIL  {tmp_path / 'bad.yaml'}" in out
    assert "'rayVerison' was unexpected" in out


def test_the_tool_renders_a_kustomize_overlay(tmp_path: Path) -> None:
    """An overlay directory goes through kubectl's kustomize: deploy/k8s's real RayService,
    whose every field the small CRD does not name, fails it (and passes nothing silently)."""
    result = crdschema.check(_small_crd(), [crdschema.K8S / "overlays" / "cpu"])
    [found] = result.values()
    assert any(e.startswith("spec: Additional properties") for e in found), found
