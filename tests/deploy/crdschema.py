"""Check deploy/k8s's RayService against the RayService CRD of *your* KubeRay:

    kubectl get crd rayservices.ray.io -o yaml > crd.yaml
    python -m tests.deploy.crdschema crd.yaml [OVERLAY_DIR_OR_YAML ...]

The CRD may also be ``ray-operator/config/crd/bases/ray.io_rayservices.yaml`` of a KubeRay
release, or JSON holding just its ``openAPIV3Schema``. Each overlay (default: deploy/k8s's
base, overlays/cpu and overlays/gpu) is a kustomize directory (rendered with the kustomize
inside kubectl) or a rendered YAML file; each RayService in it is checked against the CRD's
served storage version. One line per overlay, then its errors; exit status 1 on any error.

A CRD's ``openAPIV3Schema`` is close to JSON Schema; three of its Kubernetes extensions
change what is accepted, and are rewritten here for ``jsonschema``:

- structural pruning: the API server drops a field its schema does not name (and
  ``kubectl apply``'s default ``--validate=strict`` refuses it), so every object schema
  with ``properties`` gets ``additionalProperties: false``, unless it sets
  ``x-kubernetes-preserve-unknown-fields``;
- ``x-kubernetes-int-or-string: true`` (a port, a quantity): an integer or a string;
- ``nullable: true``: null is allowed too.

``x-kubernetes-validations`` (CEL rules, such as fields that are immutable once set) are
about updates and are not checked; ``format`` (int32, date-time) is informative here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml

HERE = Path(__file__).resolve().parent
K8S = HERE.parents[1] / "deploy" / "k8s"
DEFAULT_OVERLAYS = ("base", "overlays/cpu", "overlays/gpu")


def structural(schema: Any) -> Any:
    """``schema`` (a CRD's openAPIV3Schema node) as JSON Schema with the API server's rules."""
    if isinstance(schema, list):
        return [structural(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: structural(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", False)
    if schema.get("nullable"):
        out.pop("nullable")
        if "type" in out:
            out["type"] = [out["type"], "null"]
    return out


def open_api_schema(crd: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(``group/version``, openAPIV3Schema) of a CRD document: a CustomResourceDefinition
    (its served storage version), or a mapping holding ``openAPIV3Schema`` itself."""
    if crd.get("kind") == "CustomResourceDefinition":
        spec = crd["spec"]
        if spec["names"]["kind"] != "RayService":
            raise ValueError(f"a CRD of {spec['names']['kind']}, not RayService")
        [version] = [v for v in spec["versions"] if v.get("storage")]
        return f"{spec['group']}/{version['name']}", version["schema"]["openAPIV3Schema"]
    if "openAPIV3Schema" in crd:
        api = f"{crd.get('group', 'ray.io')}/{crd.get('version', 'v1')}"
        return api, crd["openAPIV3Schema"]
    raise ValueError("neither a CustomResourceDefinition nor an openAPIV3Schema")


def crd_validator(crd: dict[str, Any]) -> tuple[str, jsonschema.protocols.Validator]:
    """(``group/version``, a validator with the API server's rules) of a CRD document."""
    api, schema = open_api_schema(crd)
    converted = structural(schema)
    cls = jsonschema.validators.validator_for(converted, default=jsonschema.Draft7Validator)
    cls.check_schema(converted)
    return api, cls(converted)


def errors(doc: dict[str, Any], validator: jsonschema.protocols.Validator) -> list[str]:
    """Every place ``doc`` breaks the schema, as ``path: message``."""
    found = sorted(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in found]


def load(path: Path) -> dict[str, Any]:
    """One YAML or JSON document (JSON is YAML)."""
    return dict(yaml.safe_load(path.read_text()))


def rendered(overlay: Path) -> list[dict[str, Any]]:
    """The documents of a kustomize directory (kubectl's kustomize) or of a YAML file."""
    if overlay.is_dir():
        kubectl = Path(sys.executable).with_name("kubectl")
        out = subprocess.run(
            [str(kubectl) if kubectl.exists() else "kubectl", "kustomize", str(overlay)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        text = out.stdout
    else:
        text = overlay.read_text()
    return [d for d in yaml.safe_load_all(text) if d]


def check(crd: dict[str, Any], overlays: list[Path]) -> dict[str, list[str]]:
    """Per overlay, the errors of its RayServices against ``crd`` (an empty list: it passes)."""
    api, validator = crd_validator(crd)
    out: dict[str, list[str]] = {}
    for overlay in overlays:
        found: list[str] = []
        services = [d for d in rendered(overlay) if d.get("kind") == "RayService"]
        if not services:
            found.append("(no RayService)")
        for svc in services:
            if svc.get("apiVersion") != api:
                found.append(f"apiVersion: {svc.get('apiVersion')!r}, the CRD serves {api!r}")
            found += errors(svc, validator)
        out[str(overlay)] = found
    return out


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    overlays = [Path(a) for a in argv[1:]] or [K8S / o for o in DEFAULT_OVERLAYS]
    result = check(load(Path(argv[0])), overlays)
    for overlay, found in result.items():
        print(f"{'FAIL' if found else 'ok'}  {overlay}")
        for line in found:
            print(f"    {line}")
    return 1 if any(result.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
