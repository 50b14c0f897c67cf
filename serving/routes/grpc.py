"""KServe v2 over gRPC: the ``GRPCInferenceService`` that ``tritonclient.grpc`` calls.

Ray Serve's gRPC ingress registers tritonclient's own servicer
(``service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server``) and calls the ingress
method named like the RPC with the request message; these functions translate
messages to and from the same DataPlane the REST routes use. Tensors travel as
``raw_input_contents`` / ``raw_output_contents`` (``np.frombuffer``, no per-element
work) or, for clients that send typed ``contents``, from those repeated fields.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tritonclient.grpc import service_pb2

from serving.codecs.tensors import (
    datatype_of,
    deserialize_bytes_tensor,
    numpy_dtype,
    serialize_bytes_tensor,
)
from serving.dataplane import DataPlane
from serving.audit import audit_log
from serving.errors import InvalidRequest, ReengageError, grpc_code, status_and_body
from serving.security import ANONYMOUS, GRPC_GROUPS, Authenticator, Principal

# typed contents (InferTensorContents) per v2 datatype: the repeated field and the numpy
# dtype protobuf holds it in; INT8/INT16/UINT8/UINT16 ride in the 32-bit fields and are
# range-checked on the way down. FP16 and BF16 have no typed field (raw only).
_CONTENTS: dict[str, tuple[str, np.dtype]] = {
    "BOOL": ("bool_contents", np.dtype(np.bool_)),
    "INT8": ("int_contents", np.dtype(np.int32)),
    "INT16": ("int_contents", np.dtype(np.int32)),
    "INT32": ("int_contents", np.dtype(np.int32)),
    "INT64": ("int64_contents", np.dtype(np.int64)),
    "UINT8": ("uint_contents", np.dtype(np.uint32)),
    "UINT16": ("uint_contents", np.dtype(np.uint32)),
    "UINT32": ("uint_contents", np.dtype(np.uint32)),
    "UINT64": ("uint64_contents", np.dtype(np.uint64)),
    "FP32": ("fp32_contents", np.dtype(np.float32)),
    "FP64": ("fp64_contents", np.dtype(np.float64)),
    "BYTES": ("bytes_contents", np.dtype(object)),
}


def _version(v: str) -> str | None:
    return v or None


def decode_inputs(request: Any) -> dict[str, np.ndarray]:
    """One ndarray per input, from ``raw_input_contents`` (all inputs, or none) or from
    each input's typed ``contents``; mistakes are ``InvalidRequest`` naming the input."""
    arrays: dict[str, np.ndarray] = {}
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise InvalidRequest(
            "raw_input_contents must hold one entry per input", field="raw_input_contents"
        )
    for i, tensor in enumerate(request.inputs):
        field = f"inputs[{tensor.name}]"
        shape = tuple(int(d) for d in tensor.shape)
        if any(d < 0 for d in shape):
            raise InvalidRequest("dimensions must be >= 0", field=f"{field}.shape")
        count = int(np.prod(shape)) if shape else 1
        try:
            dtype = numpy_dtype(tensor.datatype)
        except Exception:
            raise InvalidRequest(
                f"unknown datatype '{tensor.datatype}'", field=f"{field}.datatype"
            ) from None
        if raw:
            if tensor.HasField("contents"):
                raise InvalidRequest(
                    "typed contents and raw_input_contents given together",
                    field=f"{field}.contents",
                )
            arrays[tensor.name] = _from_raw(raw[i], tensor.datatype, dtype, shape, count, field)
        else:
            arrays[tensor.name] = _from_contents(tensor, dtype, shape, count, field)
    return arrays


def _from_raw(
    buf: bytes, datatype: str, dtype: np.dtype, shape: tuple[int, ...], count: int, field: str
) -> np.ndarray:
    if datatype == "BYTES":
        try:
            return deserialize_bytes_tensor(buf, count).reshape(shape)
        except ValueError as exc:
            raise InvalidRequest(
                f"BYTES data does not match shape {list(shape)}: {exc}", field=field
            ) from None
    if len(buf) != count * dtype.itemsize:
        raise InvalidRequest(f"{len(buf)} bytes for shape {list(shape)} of {datatype}", field=field)
    return np.frombuffer(buf, dtype=dtype).reshape(shape)


def _from_contents(
    tensor: Any, dtype: np.dtype, shape: tuple[int, ...], count: int, field: str
) -> np.ndarray:
    entry = _CONTENTS.get(tensor.datatype)
    if entry is None:
        raise InvalidRequest(
            f"{tensor.datatype} has no typed contents: send it in raw_input_contents",
            field=f"{field}.contents",
        )
    name, held = entry
    values = getattr(tensor.contents, name)
    if len(values) != count:
        raise InvalidRequest(
            f"{len(values)} values in contents.{name} for shape {list(shape)} of {tensor.datatype}",
            field=f"{field}.contents",
        )
    if held.kind == "O":
        out = np.empty(count, dtype=object)
        out[:] = list(values)
        return out.reshape(shape)
    array = np.fromiter(values, dtype=held, count=count)
    if held != dtype:  # a narrower integer type than its field
        info = np.iinfo(dtype)
        if count and (int(array.min()) < info.min or int(array.max()) > info.max):
            raise InvalidRequest(
                f"values outside the {tensor.datatype} range [{info.min}, {info.max}]",
                field=f"{field}.contents",
            )
        array = array.astype(dtype)
    return array.reshape(shape)


def encode_outputs(response: Any, outputs: dict[str, np.ndarray], request: Any) -> None:
    wanted = [o.name for o in request.outputs] or list(outputs)
    for name in wanted:
        if name not in outputs:
            raise InvalidRequest(
                f"unknown output; this model has {sorted(outputs)}", field=f"outputs[{name}]"
            )
        array = outputs[name]
        datatype = datatype_of(array.dtype).value
        response.outputs.add(name=name, datatype=datatype, shape=list(array.shape))
        raw = (
            serialize_bytes_tensor(array)
            if datatype == "BYTES"
            else np.ascontiguousarray(array).tobytes()
        )
        response.raw_output_contents.append(raw)


def _authorization(grpc_context: Any) -> str | None:
    """The ``authorization`` metadata of the call (gRPC lower-cases metadata keys)."""
    for item in grpc_context.invocation_metadata() or ():
        key, value = (item.key, item.value) if hasattr(item, "key") else item
        if key == "authorization":
            return value if isinstance(value, str) else value.decode("latin-1")
    return None


class GrpcAdapter:
    def __init__(self, dataplane: DataPlane, authenticator: Authenticator | None = None) -> None:
        self.dp = dataplane
        self.kserve = dataplane.kserve
        self.auth = authenticator or Authenticator(dataplane.settings)

    async def call(self, method: str, request: Any, grpc_context: Any) -> Any:
        """Run one RPC; a ReengageError becomes the matching gRPC status with its message.

        The method's route group is checked first, from the ``authorization`` metadata
        (``Bearer <token>``): UNAUTHENTICATED without a known token, PERMISSION_DENIED
        without the group's role. Admin methods get the caller's token name (audit)."""
        handler = getattr(self, method)
        group = GRPC_GROUPS[method]
        try:
            if group not in self.auth.protected and group != "admin":
                return await handler(request)
            principal = self._caller(method, group, grpc_context)
            if group == "admin":
                return await handler(request, actor=principal.name if principal else ANONYMOUS)
            return await handler(request)
        except Exception as exc:  # the one mapper, as for HTTP
            status, body = status_and_body(exc)
            err = body["error"]
            grpc_context.set_code(grpc_code(status))
            grpc_context.set_details(
                err["message"] if not err.get("field") else f"{err['field']}: {err['message']}"
            )
            return getattr(service_pb2, f"{method}Response")()

    def _caller(self, method: str, group: str, grpc_context: Any) -> Principal | None:
        authorization = _authorization(grpc_context)
        if group not in self.auth.protected:  # admin left open: still name the caller
            return self.auth.identify(authorization)
        try:
            return self.auth.check(group, authorization)
        except ReengageError as exc:
            if (
                group == "admin"
            ):  # refused admin calls are audited (not fsync'd: a flood must stay cheap)
                forbidden = exc.status_code == 403  # ``exc`` is unbound once the except block ends

                def actor() -> str:  # called later, on the audit writer's thread
                    principal = self.auth.identify(authorization) if forbidden else None
                    return principal.name if principal else ANONYMOUS

                audit_log(self.dp.settings).refused(
                    f"grpc {method}",
                    actor=actor,
                    source=_peer(grpc_context),
                    message=f"{exc.status_code} {exc.error_type}: {exc.message}",
                )
            raise

    async def ServerLive(self, request: Any) -> Any:
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any) -> Any:
        return service_pb2.ServerReadyResponse(ready=await self.dp.ready())

    async def ModelReady(self, request: Any) -> Any:
        return service_pb2.ModelReadyResponse(
            ready=await self.kserve.model_ready(request.name, _version(request.version))
        )

    async def ServerMetadata(self, request: Any) -> Any:
        meta = self.kserve.server_metadata()
        return service_pb2.ServerMetadataResponse(
            name=meta["name"], version=meta["version"], extensions=meta["extensions"]
        )

    async def ModelMetadata(self, request: Any) -> Any:
        meta = await self.kserve.model_metadata(request.name, _version(request.version))
        tensor = service_pb2.ModelMetadataResponse.TensorMetadata
        return service_pb2.ModelMetadataResponse(
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
            inputs=[
                tensor(name=t["name"], datatype=t["datatype"], shape=t["shape"])
                for t in meta["inputs"]
            ],
            outputs=[
                tensor(name=t["name"], datatype=t["datatype"], shape=t["shape"])
                for t in meta["outputs"]
            ],
        )

    async def ModelInfer(self, request: Any) -> Any:
        arrays = decode_inputs(request)
        served, outputs = await self.kserve.infer(
            request.model_name, _version(request.model_version), arrays
        )
        response = service_pb2.ModelInferResponse(
            model_name=request.model_name, model_version=served, id=request.id
        )
        encode_outputs(response, outputs, request)
        return response

    async def RepositoryIndex(self, request: Any, actor: str = ANONYMOUS) -> Any:
        rows = await self.kserve.repository_index(request.ready)
        item = service_pb2.RepositoryIndexResponse.ModelIndex
        return service_pb2.RepositoryIndexResponse(models=[item(**r) for r in rows])

    async def RepositoryModelLoad(self, request: Any, actor: str = ANONYMOUS) -> Any:
        await self.kserve.load_model(request.model_name, actor=actor)
        return service_pb2.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(self, request: Any, actor: str = ANONYMOUS) -> Any:
        await self.kserve.unload_model(request.model_name, actor=actor)
        return service_pb2.RepositoryModelUnloadResponse()


def _peer(grpc_context: Any) -> str:
    """The caller's address without its port (``ipv4:10.0.0.7:51234`` -> ``ipv4:10.0.0.7``)."""
    try:
        peer = str(grpc_context.peer())
    except Exception:  # a context without a peer (tests, Serve's wrapper)
        return "unknown"
    return peer.rsplit(":", 1)[0] if peer.count(":") >= 2 else peer
