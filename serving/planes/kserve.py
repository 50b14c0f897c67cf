"""What the KServe v2 endpoints do (REST and gRPC alike): metadata, readiness, inference,
the model repository and the model card."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy.typing as npt

from serving import audit, request_log
from serving.codecs.binary import validate_inputs
from serving.components.api import Model
from serving.errors import NotFound, ReengageError
from serving.planes.lookup import model_named
from serving.protocol.v2 import MetadataTensor
from serving.security import ANONYMOUS
from serving.settings import Settings

SERVER_NAME = "reengage"
SERVER_VERSION = "0.1.0"
V2_EXTENSIONS = ["binary_tensor_data", "model_repository"]

Tensors = dict[str, npt.NDArray[Any]]


class KServePlane:
    """The Open Inference Protocol over the model services; admin calls are audited."""

    def __init__(self, settings: Settings, models: dict[str, Model]) -> None:
        self.settings = settings
        self.models = models

    def server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": V2_EXTENSIONS}

    async def model_metadata(self, name: str, version: str | None) -> dict[str, Any]:
        """The model's metadata; with a link to the version's card when the build wrote one."""
        meta = await model_named(self.models, name).metadata(version)
        served = meta["parameters"]["version"]
        if (self.settings.models.repo_path / name / served / "card.md").is_file():
            meta["parameters"]["model_card"] = f"/v2/models/{name}/versions/{served}/card"
        return meta

    async def model_card(self, name: str, version: str) -> str:
        """The version's ``card.md`` (Markdown, written by the build)."""
        await model_named(self.models, name).metadata(version)  # unknown model/version: a 404
        path = self.settings.models.repo_path / name / version / "card.md"
        try:
            return await asyncio.to_thread(path.read_text)
        except OSError:
            raise NotFound(
                f"model '{name}' version {version} has no model card", field="model_version"
            ) from None

    async def model_ready(self, name: str, version: str | None) -> bool:
        """False for a version not (yet) ready; an unknown model is a 404 (ModelNotFound)."""
        model = model_named(self.models, name)
        try:
            return bool(await model.ready(version))
        except ReengageError:
            return False

    async def infer(self, name: str, version: str | None, inputs: Tensors) -> tuple[str, Tensors]:
        """Inputs checked against the model's metadata (names, datatype, shape) for every
        transport, then run (dynamically batched)."""
        model = model_named(self.models, name)
        specs = await model.input_specs(version)
        validate_inputs(
            inputs,
            [MetadataTensor(name=s.name, datatype=s.datatype, shape=list(s.shape)) for s in specs],
        )
        used, outputs = await model.infer(inputs, version)
        request_log.note(model_versions={name: used})
        return used, outputs

    async def repository_index(self, ready_only: bool = False) -> list[dict[str, str]]:
        rows: list[dict[str, str]] = []
        for service in self.models.values():
            rows.extend(await service.index())
        return [r for r in rows if r["state"] == "READY"] if ready_only else rows

    async def load_model(self, name: str, actor: str = ANONYMOUS) -> list[str]:
        """Admin: (re)load every version of ``name``; audited with the caller's token name."""
        async with audit.action(self.settings, "repository.load", actor=actor, model=name) as entry:
            versions = await model_named(self.models, name).load()
            entry["details"]["versions"] = list(versions)
        return versions

    async def unload_model(self, name: str, actor: str = ANONYMOUS) -> None:
        async with audit.action(self.settings, "repository.unload", actor=actor, model=name):
            await model_named(self.models, name).unload()
