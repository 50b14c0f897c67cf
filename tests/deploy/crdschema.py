"""KubeRay's RayService CRD schema (vendored under tests/deploy/crds/) as a JSON Schema
that checks what the API server would.

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

import json
from functools import cache
from pathlib import Path
from typing import Any

CRDS = Path(__file__).resolve().parent / "crds"
# the KubeRay releases the manifests are checked against: the oldest deploy/k8s supports
# (rayservice.yaml says >= 1.5.1) and the newest release vendored
KUBERAY = ("v1.5.1", "v1.7.0")


@cache
def vendored(release: str) -> dict[str, Any]:
    """The vendored file of a KubeRay release: its source, commit and ``openAPIV3Schema``."""
    return dict(json.loads((CRDS / f"rayservice-{release}.json").read_text()))


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


@cache
def validator(release: str) -> Any:
    """A ``jsonschema`` validator of RayService objects for a vendored KubeRay release."""
    import jsonschema

    schema = structural(vendored(release)["openAPIV3Schema"])
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    cls.check_schema(schema)
    return cls(schema)


def errors(doc: dict[str, Any], release: str) -> list[str]:
    """Every place ``doc`` breaks the release's RayService schema, as ``path: message``."""
    found = sorted(validator(release).iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in found]
