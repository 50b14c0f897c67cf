"""Refresh a vendored RayService schema from KubeRay's CRD file:
``python -m tests.deploy.crds.refresh CRD_YAML TAG COMMIT``.

``CRD_YAML`` is ``ray-operator/config/crd/bases/ray.io_rayservices.yaml`` of KubeRay at
release ``TAG`` (git commit ``COMMIT``), e.g. from a clone of
github.com/ray-project/kuberay: ``git show v1.7.0:ray-operator/config/crd/bases/ray.io_rayservices.yaml``.
The CRD file is about 1 MB; only the ``openAPIV3Schema`` of its served storage version
(v1) is kept, as ``rayservice-TAG.json`` beside this file, with where it came from.
KubeRay is Apache-2.0 licensed (its LICENSE); the schema is kept unchanged.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
SOURCE = "https://github.com/ray-project/kuberay"
CRD_PATH = "ray-operator/config/crd/bases/ray.io_rayservices.yaml"


def vendor(crd_yaml: Path, tag: str, commit: str) -> Path:
    crd = yaml.safe_load(crd_yaml.read_text())
    assert (
        crd["kind"] == "CustomResourceDefinition" and crd["spec"]["names"]["kind"] == "RayService"
    )
    [v1] = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    assert v1["served"] and v1["storage"], "v1 is KubeRay's served storage version"
    out = HERE / f"rayservice-{tag}.json"
    doc = {
        "source": f"{SOURCE}/blob/{commit}/{CRD_PATH}",
        "kuberay": tag,
        "commit": commit,
        "license": "Apache-2.0 (KubeRay's LICENSE); the schema is unchanged",
        "refresh": f"python -m tests.deploy.crds.refresh CRD_YAML TAG COMMIT ({__name__})",
        "group": crd["spec"]["group"],
        "version": v1["name"],
        "openAPIV3Schema": v1["schema"]["openAPIV3Schema"],
    }
    out.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return out


if __name__ == "__main__":
    print(vendor(Path(sys.argv[1]), sys.argv[2], sys.argv[3]))
