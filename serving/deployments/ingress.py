"""The ingress deployment: FastAPI over the DataPlane, built at replica start."""

from __future__ import annotations

from typing import Any

from ray import serve

from serving.dataplane import DataPlane
from serving.http import create_app
from serving.routes.grpc import GrpcAdapter
from serving.settings import Settings


@serve.ingress()
class Ingress:
    """Holds the services in-process (fused) or DeploymentHandles to them (split)."""

    def __init__(
        self,
        settings: Settings,
        features: Any | None = None,
        models: dict[str, Any] | None = None,
        bandit: Any | None = None,
        writer: Any | None = None,
    ) -> None:
        if features is None or models is None:
            from serving.deployments.local import local_services

            features, models, bandit_local, writer_local = local_services(settings)
            bandit = bandit if bandit is not None else bandit_local
            writer = writer if writer is not None else writer_local
        self.dataplane = DataPlane(settings, features, models, bandit, writer)
        self.grpc = GrpcAdapter(self.dataplane)

    def __serve_build_asgi_app__(self) -> Any:
        app = create_app(self.dataplane)
        replica = serve.get_replica_context().replica_id.unique_id

        @app.middleware("http")
        async def _replica_header(request: Any, call_next: Any) -> Any:
            response = await call_next(request)
            response.headers["x-reengage-replica"] = replica  # which replica answered (ops, tests)
            return response

        return app


GRPC_METHODS = ("ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer",
                "RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload")


def _rpc(name: str) -> Any:
    async def method(self: Ingress, request: Any, grpc_context: Any) -> Any:
        return await self.grpc.call(name, request, grpc_context)

    method.__name__ = method.__qualname__ = name
    return method


# KServe v2 gRPC (GRPCInferenceService): Serve's gRPC ingress calls the method named like
# the RPC, passing ``grpc_context`` so errors can carry their gRPC status.
for _name in GRPC_METHODS:
    setattr(Ingress, _name, _rpc(_name))
