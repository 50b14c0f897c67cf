"""Open Inference Protocol (KServe v2) REST wire types.

Written from the OIP REST spec (health, metadata, inference, repository extension) in
the shape of MLServer's generated ``types/dataplane.py``: one set of pydantic models,
an enum for datatypes, ``protected_namespaces=()`` because the spec's own field names
start with ``model_``. Tensor ``data`` stays ``Any``: element validation would cost a
Python call per element, so ``serving.codecs.tensors`` checks it with numpy instead.

Requests are parsed with these types; answers are written with orjson and these types
are what the routes declare (``response_model``), each describing what is sent.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel


class _Wire(BaseModel):
    model_config = ConfigDict(protected_namespaces=(), populate_by_name=True)


class _Answer(BaseModel):
    """An answer we send: exactly these keys."""

    model_config = ConfigDict(protected_namespaces=(), extra="forbid")


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
    """Free-form request parameters; the binary tensor extension's keys are typed.

    ``binary_data_size``: bytes of this input in the binary section.
    ``binary_data``: on a requested output, return it in the binary section.
    ``binary_data_output``: on the request, the default for ``binary_data`` of every
    output (tritonclient sends it as true when no outputs are named).
    """

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    binary_data_size: int | None = Field(None, ge=0)
    binary_data: bool | None = None
    binary_data_output: bool | None = None


# ---- health / server ---------------------------------------------------------------


class ServerLiveResponse(_Answer):
    live: bool


class ServerReadyResponse(_Answer):
    """Sent with 200 when ready, 503 when not (a model is not ready)."""

    ready: bool


class ModelReadyResponse(_Answer):
    """Body of ``GET /v2/models/{m}[/versions/{v}]/ready``: 200 when ready, 503 when not
    (unknown, unloaded); the status code is what tritonclient's ``is_model_ready`` reads."""

    name: str
    ready: bool


class ServerMetadataResponse(_Answer):
    name: str
    version: str
    extensions: list[str]


# ---- model metadata ----------------------------------------------------------------


class MetadataTensor(_Answer):
    """A model input or output: ``-1`` in ``shape`` is a variable dimension."""

    name: str
    datatype: Datatype
    shape: list[int]


class ModelParameters(_Answer):
    """The served version and the feature columns it reads, plus the ``parameters`` of
    the model's config.pbtxt (string values, e.g. ``feature_service``)."""

    model_config = ConfigDict(protected_namespaces=(), extra="allow")
    __pydantic_extra__: dict[str, str] = Field(init=False)

    features: list[str] = Field(description="input columns in the model's order")
    version: str = Field(description="the version this metadata describes")


class ModelMetadataResponse(_Answer):
    name: str
    versions: list[str] = Field(description="every servable version, oldest first")
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]
    parameters: ModelParameters


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


class BinaryDataSize(_Answer):
    binary_data_size: int = Field(ge=0, description="bytes of this output in the binary section")


class ResponseOutput(_Answer):
    """One output tensor: ``data`` (flat, row-major) in JSON, or ``parameters`` with its
    size when it travels in the binary section (then ``data`` is absent)."""

    name: str
    datatype: Datatype
    shape: list[int]
    parameters: BinaryDataSize | None = None
    data: list[Any] | None = None


class InferenceResponse(_Answer):
    """The JSON answer (or the binary answer's JSON header). Also the "meta" that
    ``codecs.binary.encode_infer_response`` fills outputs into: leave ``outputs`` empty
    there. ``id`` is sent only when the request had one; ``model_version`` always
    (optional here only so a codec can be called without one)."""

    model_config = ConfigDict(
        protected_namespaces=(),
        extra="forbid",
        json_schema_extra={"required": ["model_name", "model_version", "outputs"]},
    )

    model_name: str
    model_version: str | None = None
    id: str | None = None
    outputs: list[ResponseOutput] = []


# ---- repository extension ----------------------------------------------------------


class RepositoryIndexRequest(_Wire):
    """``POST /v2/repository/index``; tritonclient sends an empty body (treat as ``{}``)."""

    ready: bool | None = None


class RepositoryIndexResponseItem(_Answer):
    name: str
    version: str
    state: Literal["READY", "UNAVAILABLE"]
    reason: str = Field(
        description='"" when ready; "unloaded" or "not in version_policy" otherwise'
    )


class RepositoryIndexResponse(RootModel[list[RepositoryIndexResponseItem]]):
    """The body is the bare list of every version on disk (``ready: true``: ready ones)."""


class RepositoryModelResponse(_Answer):
    """``load`` / ``unload`` answer an empty object ``{}``; their request bodies are
    ignored (tritonclient's config and file overrides are not supported)."""


# ---- errors ------------------------------------------------------------------------


class OIPErrorResponse(_Answer):
    """The Open Inference Protocol's error body, which tritonclient shows as the
    exception message, with our error type and field beside it (``serving.http.error_response``)."""

    error: str = Field(
        description='the message, prefixed with the field when there is one: "field: message"'
    )
    error_type: str = Field(description="the error type, as in the v1 error body (serving.errors)")
    field: str | None = Field(description="the request field at fault; null if none")
