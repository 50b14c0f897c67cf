"""gRPC auth on the KServe v2 servicer: each method's group answers UNAUTHENTICATED without
a token, PERMISSION_DENIED with a token lacking the role, OK with the right one (the
``authorization`` metadata); admin calls are audited with the caller's token name."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2

from serving.security import GRPC_GROUPS
from tests.serving.authkit import ALL_TOKEN, RIGHT, TOKENS, WRONG, auth_dataplane, make_settings


class Context:
    """What the adapter uses of Ray Serve's ``RayServegRPCContext``."""

    def __init__(self, metadata: list[tuple[str, str]]) -> None:
        self.metadata = metadata
        self.code: Any = None
        self.details = ""

    def invocation_metadata(self) -> list[tuple[str, str]]:
        return self.metadata

    def set_code(self, code: Any) -> None:
        self.code = code

    def set_details(self, details: str) -> None:
        self.details = details


def _infer_request() -> Any:
    x = np.ones((2, 3), dtype=np.float32)
    request = service_pb2.ModelInferRequest(model_name="churn")
    request.inputs.add(name="features", datatype="FP32", shape=[2, 3])
    request.raw_input_contents.append(x.tobytes())
    return request


REQUESTS: dict[str, Any] = {
    "ServerLive": service_pb2.ServerLiveRequest(),
    "ServerReady": service_pb2.ServerReadyRequest(),
    "ModelReady": service_pb2.ModelReadyRequest(name="churn"),
    "ServerMetadata": service_pb2.ServerMetadataRequest(),
    "ModelMetadata": service_pb2.ModelMetadataRequest(name="churn"),
    "ModelInfer": _infer_request(),
    "RepositoryIndex": service_pb2.RepositoryIndexRequest(),
    "RepositoryModelUnload": service_pb2.RepositoryModelUnloadRequest(model_name="engagement"),
    "RepositoryModelLoad": service_pb2.RepositoryModelLoadRequest(model_name="engagement"),
}


def _meta(name: str | None) -> list[tuple[str, str]]:
    return [("x-other", "1")] + ([("authorization", f"Bearer {TOKENS[name][0]}")] if name else [])


def test_every_method_is_in_a_group() -> None:
    assert set(REQUESTS) == set(GRPC_GROUPS)


def _call(adapter: Any, method: str, who: str | None) -> Context:
    context = Context(_meta(who))
    asyncio.run(adapter.call(method, REQUESTS[method], context))
    return context


@pytest.mark.parametrize("method", list(REQUESTS))
def test_each_method_401_403_200_when_every_group_is_closed(
    tmp_path: Path, model_repo: Path, reader: Any, method: str
) -> None:
    from serving.routes.grpc import GrpcAdapter

    settings = make_settings(tmp_path, model_repo, ALL_TOKEN)
    group = GRPC_GROUPS[method]
    with auth_dataplane(settings, reader) as dataplane:
        adapter = GrpcAdapter(dataplane)
        missing = _call(adapter, method, None)
        assert missing.code == grpc.StatusCode.UNAUTHENTICATED and missing.details.startswith(
            "authorization"
        )
        wrong = _call(adapter, method, WRONG[group])
        assert wrong.code == grpc.StatusCode.PERMISSION_DENIED and f"'{group}'" in wrong.details
        right = _call(adapter, method, RIGHT[group])
        assert right.code is None, right.details  # OK: no status set


def test_defaults_refuse_an_unauthenticated_unload_and_audit_it(
    tmp_path: Path, model_repo: Path, reader: Any
) -> None:
    from serving.routes.grpc import GrpcAdapter

    settings = make_settings(tmp_path, model_repo)
    with auth_dataplane(settings, reader) as dataplane:
        adapter = GrpcAdapter(dataplane)
        for method in ("ServerLive", "ModelMetadata", "ModelInfer"):  # open by default
            assert _call(adapter, method, None).code is None
        assert _call(adapter, "RepositoryModelUnload", None).code == grpc.StatusCode.UNAUTHENTICATED
        assert dataplane.models["engagement"].registry.is_ready(
            "engagement"
        )  # nothing was unloaded
        assert (
            _call(adapter, "RepositoryModelUnload", "crm").code == grpc.StatusCode.PERMISSION_DENIED
        )
        assert _call(adapter, "RepositoryModelUnload", "ops").code is None
        assert not dataplane.models["engagement"].registry.is_ready("engagement")
    entries = [json.loads(x) for x in settings.auth.audit_log.read_text().splitlines()]
    assert [(e["actor"], e["action"], e["model"], e["result"]) for e in entries] == [
        ("anonymous", "grpc RepositoryModelUnload", None, "denied"),
        ("crm", "grpc RepositoryModelUnload", None, "denied"),
        ("ops", "repository.unload", "engagement", "ok"),
    ]
    for token, _ in TOKENS.values():
        assert token not in settings.auth.audit_log.read_text()


def test_unloaded_model_is_unavailable_over_grpc(
    tmp_path: Path, model_repo: Path, reader: Any
) -> None:
    from serving.routes.grpc import GrpcAdapter

    settings = make_settings(tmp_path, model_repo)
    with auth_dataplane(settings, reader) as dataplane:
        adapter = GrpcAdapter(dataplane)
        unload = Context(_meta("ops"))
        asyncio.run(
            adapter.call(
                "RepositoryModelUnload",
                service_pb2.RepositoryModelUnloadRequest(model_name="churn"),
                unload,
            )
        )
        assert unload.code is None
        infer = _call(adapter, "ModelInfer", None)
        assert infer.code == grpc.StatusCode.UNAVAILABLE and "churn" in infer.details
        unknown = Context([])
        asyncio.run(
            adapter.call("ModelInfer", service_pb2.ModelInferRequest(model_name="nope"), unknown)
        )
        assert unknown.code == grpc.StatusCode.NOT_FOUND
