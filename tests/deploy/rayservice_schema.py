"""Our own compact schema of the RayService (ray.io/v1) fields deploy/k8s writes, checked in
CI with no network and no copy of KubeRay's CRD.

It is written from KubeRay's API reference (ray-project.github.io/kuberay/reference/api)
for the releases deploy/k8s supports (>= 1.5.1) and names the fields the oldest of them
accepts: a field KubeRay 1.5.1 does not know is pruned by its API server, so it fails
here (``additionalProperties: false`` on every object, as structural pruning would
drop it). Beside each field we use are the siblings a typo would most likely hit, with
their types, enums and required fields. It is stricter than the CRD where Kubernetes
itself is stricter (a Service type, an image pull policy, non-negative replica counts).

What KubeRay embeds from Kubernetes is checked by Kubernetes' own schemas
(kubernetes-validate, strict): each group's ``template`` as a PodTemplateSpec, and the
autoscaler's container fields (env, resources, securityContext ...) as a Container.

Against the CRD a cluster actually runs: ``python -m tests.deploy.crdschema``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jsonschema

Schema = dict[str, Any]

INT32: Schema = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
COUNT: Schema = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
STRING: Schema = {"type": "string"}
BOOL: Schema = {"type": "boolean"}
OBJECT: Schema = {"type": "object"}  # free-form here: checked elsewhere or not ours
STRING_MAP: Schema = {"type": "object", "additionalProperties": STRING}
POD_TEMPLATE: Schema = {"type": "object"}  # a Kubernetes PodTemplateSpec: kubernetes-validate


def closed(properties: dict[str, Schema], *required: str) -> Schema:
    """An object of exactly these fields: any other is a typo the API server would drop."""
    out: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        out["required"] = list(required)
    return out


KEY_REF = closed({"name": STRING, "key": STRING, "optional": BOOL}, "key")
# a value, or a reference to one (Kubernetes' EnvVarSource): a Redis password or user name
VALUE_OR_REF = closed(
    {
        "value": STRING,
        "valueFrom": closed(
            {
                "secretKeyRef": KEY_REF,
                "configMapKeyRef": KEY_REF,
                "fieldRef": OBJECT,
                "resourceFieldRef": OBJECT,
            }
        ),
    }
)

GCS_FAULT_TOLERANCE = closed(
    {
        "redisAddress": STRING,  # host:port
        "redisPassword": VALUE_OR_REF,
        "redisUsername": VALUE_OR_REF,
        "externalStorageNamespace": STRING,
    },
    "redisAddress",
)

AUTOSCALER = closed(
    {
        "upscalingMode": {"enum": ["Default", "Aggressive", "Conservative"]},
        "idleTimeoutSeconds": COUNT,
        "version": {"enum": ["v1", "v2"]},
        "image": STRING,
        "imagePullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
        # a Container's fields, checked by Kubernetes' schema (``container_errors``)
        "env": {"type": "array", "items": OBJECT},
        "envFrom": {"type": "array", "items": OBJECT},
        "resources": OBJECT,
        "securityContext": OBJECT,
        "volumeMounts": {"type": "array", "items": OBJECT},
    }
)

HEAD_GROUP = closed(
    {
        "rayStartParams": STRING_MAP,  # map[string]string: "0", never 0
        "template": POD_TEMPLATE,
        "serviceType": {"enum": ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]},
        "headService": OBJECT,  # a Kubernetes Service
        "enableIngress": BOOL,
        "labels": STRING_MAP,
        "resources": STRING_MAP,
    },
    "template",
)

WORKER_GROUP = closed(
    {
        "groupName": {"type": "string", "minLength": 1},
        "replicas": COUNT,
        "minReplicas": COUNT,
        "maxReplicas": COUNT,
        "numOfHosts": {**COUNT, "minimum": 1},
        "idleTimeoutSeconds": COUNT,
        "rayStartParams": STRING_MAP,
        "template": POD_TEMPLATE,
        "scaleStrategy": closed({"workersToDelete": {"type": "array", "items": STRING}}),
        "suspend": BOOL,
        "labels": STRING_MAP,
        "resources": STRING_MAP,  # custom Ray resources, as strings
    },
    "groupName",
    "minReplicas",
    "maxReplicas",
    "template",
)

RAY_CLUSTER = closed(
    {
        "rayVersion": STRING,
        "enableInTreeAutoscaling": BOOL,
        "autoscalerOptions": AUTOSCALER,
        "authOptions": closed({"mode": {"enum": ["disabled", "token"]}}),
        "gcsFaultToleranceOptions": GCS_FAULT_TOLERANCE,
        "headGroupSpec": HEAD_GROUP,
        "workerGroupSpecs": {"type": "array", "items": WORKER_GROUP},
        "headServiceAnnotations": STRING_MAP,
        "managedBy": STRING,
        "suspend": BOOL,
    },
    "headGroupSpec",
)

UPGRADE_STRATEGY = closed(
    {
        "type": {"enum": ["NewCluster", "NewClusterWithIncrementalUpgrade", "None"]},
        "clusterUpgradeOptions": closed(
            {
                "gatewayClassName": STRING,
                "stepSizePercent": COUNT,
                "intervalSeconds": COUNT,
                "maxSurgePercent": COUNT,
            },
            "gatewayClassName",
            "stepSizePercent",
            "intervalSeconds",
        ),
    }
)

SPEC = closed(
    {
        "serveConfigV2": STRING,  # Serve's config file, as one YAML string
        "rayClusterConfig": RAY_CLUSTER,
        "upgradeStrategy": UPGRADE_STRATEGY,
        "serveService": OBJECT,  # a Kubernetes Service
        "excludeHeadPodFromServeSvc": BOOL,
        "deploymentUnhealthySecondThreshold": INT32,
        "serviceUnhealthySecondThreshold": INT32,
        "rayClusterDeletionDelaySeconds": INT32,
    },
    "rayClusterConfig",
)

RAYSERVICE = closed(
    {
        "apiVersion": {"const": "ray.io/v1"},
        "kind": {"const": "RayService"},
        "metadata": OBJECT,
        "spec": SPEC,
        "status": OBJECT,
    },
    "apiVersion",
    "kind",
    "metadata",
    "spec",
)


@cache
def validator() -> jsonschema.Draft7Validator:
    jsonschema.Draft7Validator.check_schema(RAYSERVICE)
    return jsonschema.Draft7Validator(RAYSERVICE)


def _dotted(path: Any) -> str:
    return ".".join(str(p) for p in path) or "(root)"


def _kubernetes_errors(where: str, template: dict[str, Any]) -> list[str]:
    """``template`` (a PodTemplateSpec) against Kubernetes' strict schema, as ``path: message``
    with paths from the RayService's root."""
    import kubernetes_validate

    doc = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "check"}}
    try:
        kubernetes_validate.validate(
            {**doc, "template": template}, kubernetes_validate.latest_version(), strict=True
        )
    except kubernetes_validate.ValidationError as e:
        return [f"{_dotted([where, *list(e.path)[1:]])}: {e.message}"]
    return []


def container_errors(where: str, container: dict[str, Any]) -> list[str]:
    """``container``'s fields (the autoscaler's) against Kubernetes' Container schema."""
    found = _kubernetes_errors(where, {"spec": {"containers": [{"name": "c", **container}]}})
    return [e.replace(f"{where}.spec.containers.0", where, 1) for e in found]


def errors(svc: dict[str, Any]) -> list[str]:
    """Every place ``svc`` breaks our RayService schema or an embedded Kubernetes schema."""
    found = sorted(validator().iter_errors(svc), key=lambda e: [str(p) for p in e.absolute_path])
    out = [f"{_dotted(e.absolute_path)}: {e.message}" for e in found]
    cluster = svc.get("spec", {}).get("rayClusterConfig", {})
    if not isinstance(cluster, dict):
        return out
    where = "spec.rayClusterConfig"
    groups = [(f"{where}.headGroupSpec", cluster.get("headGroupSpec"))]
    workers = cluster.get("workerGroupSpecs")
    for i, group in enumerate(workers if isinstance(workers, list) else []):
        groups.append((f"{where}.workerGroupSpecs.{i}", group))
    for path, group in groups:
        if isinstance(group, dict) and isinstance(group.get("template"), dict):
            out += _kubernetes_errors(f"{path}.template", group["template"])
    autoscaler = cluster.get("autoscalerOptions")
    fields = ("env", "envFrom", "resources", "securityContext", "volumeMounts")
    embedded = {
        k: v for k, v in (autoscaler if isinstance(autoscaler, dict) else {}).items() if k in fields
    }
    if embedded:
        out += container_errors(f"{where}.autoscalerOptions", embedded)
    return out
