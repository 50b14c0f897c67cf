"""Open Inference Protocol (KServe v2) REST wire types.

Written from the OIP REST spec (health, metadata, inference, repository extension) in
the shape of MLServer's generated ``types/dataplane.py``: one set of pydantic models,
an enum for datatypes, ``protected_namespaces=()`` because the spec's own field names
start with ``model_``. Tensor ``data`` stays ``Any``: element validation would cost a
Python call per element, so ``serving.codecs.tensors`` checks it with numpy instead.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Wire(BaseModel):
    model_config = ConfigDict(protected_namespaces=(), populate_by_name=True)


class Datatype(str, Enum):
    """Tensor element types (OIP "Tensor Data Types")."""

    BOOL = "BOOL"
    UINT8 = "UINT8"
    UINT16 = "UINT16"
    UINT32 = "UINT32"
    UINT64 = "UINT64"
    INT8 = "INT8"
    INT16 = "INT16"
    INT32 = "INT32"
    INT64 = "INT64"
    FP16 = "FP16"
    FP32 = "FP32"
    FP64 = "FP64"
    BF16 = "BF16"
    BYTES = "BYTES"


class Parameters(_Wire):
    """Free-form parameters; the binary tensor extension's keys are typed.

    ``binary_data_size``: bytes of this input/output in the binary section.
    ``binary_data``: on a requested output, return it in the binary section.
    ``binary_data_output``: on the request, the default for ``binary_data`` of every
    output (tritonclient sends it as true when no outputs are named).
    """

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    content_type: str | None = None
    binary_data_size: int | None = Field(None, ge=0)
    binary_data: bool | None = None
    binary_data_output: bool | None = None


# ---- health / server ---------------------------------------------------------------


class ServerLiveResponse(_Wire):
    live: bool


class ServerReadyResponse(_Wire):
    ready: bool


class ModelReadyResponse(_Wire):
    """Body of ``GET /v2/models/{m}[/versions/{v}]/ready``; the status code (200 vs 400)
    is what tritonclient's ``is_model_ready`` reads."""

    name: str
    version: str | None = None
    ready: bool


class ServerMetadataResponse(_Wire):
    name: str
    version: str
    extensions: list[str] = []


# ---- model metadata ----------------------------------------------------------------


class MetadataTensor(_Wire):
    """A model input or output: ``-1`` in ``shape`` is a variable dimension."""

    name: str
    datatype: Datatype
    shape: list[int]
    parameters: Parameters | None = None


class ModelMetadataResponse(_Wire):
    name: str
    versions: list[str] | None = None
    platform: str
    inputs: list[MetadataTensor] = []
    outputs: list[MetadataTensor] = []
    parameters: Parameters | None = None


# ---- inference ---------------------------------------------------------------------


class RequestInput(_Wire):
    """One input tensor: ``data`` in JSON (flat or nested, row-major) or, with
    ``parameters.binary_data_size``, in the binary section after the JSON header."""

    name: str
    shape: list[int] = Field(..., description="dimensions, each >= 0")
    datatype: Datatype
    parameters: Parameters | None = None
    data: Any = None


class RequestOutput(_Wire):
    name: str
    parameters: Parameters | None = None


class InferenceRequest(_Wire):
    id: str | None = None
    parameters: Parameters | None = None
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None


class ResponseOutput(_Wire):
    """One output tensor; ``data`` is absent when it travels in the binary section."""

    name: str
    shape: list[int]
    datatype: Datatype
    parameters: Parameters | None = None
    data: Any = None


class InferenceResponse(_Wire):
    """Also the "meta" that ``codecs.binary.encode_infer_response`` fills outputs into:
    ``outputs`` may be left empty there."""

    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: Parameters | None = None
    outputs: list[ResponseOutput] = []


# ---- repository extension ----------------------------------------------------------


class ModelState(str, Enum):
    UNKNOWN = "UNKNOWN"
    READY = "READY"
    UNAVAILABLE = "UNAVAILABLE"
    LOADING = "LOADING"
    UNLOADING = "UNLOADING"


class RepositoryIndexRequest(_Wire):
    """``POST /v2/repository/index``; tritonclient sends an empty body (treat as ``{}``)."""

    ready: bool | None = None


class RepositoryIndexResponseItem(_Wire):
    name: str
    version: str | None = None
    state: ModelState
    reason: str = ""


class RepositoryIndexResponse(_Wire):
    """The wire body is the bare list of items: send ``to_wire()``."""

    models: list[RepositoryIndexResponseItem] = []

    def to_wire(self) -> list[dict[str, Any]]:
        return [m.model_dump(mode="json", exclude_none=True) for m in self.models]


class RepositoryLoadRequest(_Wire):
    """``.../load``: tritonclient may send ``parameters.config`` (JSON string) and
    ``parameters["file:<path>"]`` (base64) overrides."""

    parameters: Parameters | None = None


class RepositoryUnloadRequest(_Wire):
    parameters: Parameters | None = None


# ---- errors ------------------------------------------------------------------------


class ErrorDetail(_Wire):
    type: str
    message: str
    field: str | None = None


class ErrorResponse(_Wire):
    """DESIGN.md's error body (``serving.errors.error_body``); the OIP's ``error`` key
    holds an object here, which tritonclient surfaces as the exception message."""

    error: ErrorDetail
