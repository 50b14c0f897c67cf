"""The ingress deployment: FastAPI and the KServe v2 gRPC service over one DataPlane."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from feature_store.redact import install_log_redaction
from serving import request_log
from serving.components.api import Model
from serving.dataplane import DataPlane
from serving.deployments.artifacts import anchor
from serving.deployments.cluster import warn_embedded_state
from serving.deployments.components import fused_components, scaling
from serving.deployments.handles import RemoteWriter, remote_bandit, remote_features, remote_model
from serving.deployments.drain_signal import start_watcher as start_drain_watcher
from serving.deployments.metrics_export import start_exporter
from serving.http import create_app
from serving.monitoring import open_monitor
from serving.routes.grpc import GrpcAdapter
from serving.logfiles import RotatingFile
from serving.settings import RotationSettings, Settings


@serve.ingress()
class Ingress:
    """Holds the components in-process (fused) or typed clients of their deployments (split)."""

    def __init__(
        self,
        settings: Settings,
        features: DeploymentHandle | None = None,
        models: dict[str, DeploymentHandle] | None = None,
        bandit: DeploymentHandle | None = None,
        writer: DeploymentHandle | None = None,
    ) -> None:
        if settings.server.switch_interval_ms is not None:
            sys.setswitchinterval(settings.server.switch_interval_ms / 1000)
        fused = features is None or models is None
        # shipped paths resolved in this node's working dir; a missing registry or model repo
        # stops here
        settings = anchor(settings, check=fused)
        warn_embedded_state(
            settings
        )  # a replica on a multi-node cluster with node-local state: its log says so
        start_exporter()
        install_log_redaction()  # no credential in any log line of this replica
        context = serve.get_replica_context()  # `reengage stop` drains every ingress replica
        start_drain_watcher(context.app_name, context.replica_id.unique_id)
        # the writer's own generation timeout, plus a margin for the hop and queueing
        remote_writer = (
            RemoteWriter(writer, settings.llm.timeout_s + 2.0) if writer is not None else None
        )
        if features is None or models is None:
            local_features, local_models, local_bandit = fused_components(settings)
            plane_models: dict[str, Model] = dict(local_models)
            self.dataplane = DataPlane(
                settings,
                local_features,
                plane_models,
                local_bandit,
                remote_writer,
                monitor=open_monitor(settings),
            )
        else:
            self.dataplane = DataPlane(
                settings,
                remote_features(features),
                {n: remote_model(h) for n, h in models.items()},
                remote_bandit(bandit) if bandit is not None else None,
                remote_writer,
                monitor=open_monitor(settings),
            )
        self.grpc = GrpcAdapter(self.dataplane)

    @classmethod
    def options_for(cls, settings: Settings) -> dict[str, Any]:
        return {"name": "Ingress", **scaling(settings.server, settings.server.ingress_replicas)}

    async def __del__(self) -> None:
        """Serve calls this on a graceful stop, after the replica stopped taking requests:
        the bandit's decision log is flushed before the process exits."""
        await self.dataplane.close()

    def __serve_build_asgi_app__(self) -> Any:
        replica = serve.get_replica_context().replica_id.unique_id
        if self.dataplane.settings.server.request_log:
            request_log.configure(
                True,
                stream=request_log_file(
                    replica, self.dataplane.settings.server.request_log_rotation
                ),
            )
        # which replica answered; Serve's own RequestIdMiddleware makes and echoes X-Request-ID
        return create_app(
            self.dataplane, headers={"x-reengage-replica": replica}, echo_request_id=False
        )

    # KServe v2 gRPC (GRPCInferenceService): Serve's gRPC ingress calls the method named
    # like the RPC, passing ``grpc_context`` so errors can carry their gRPC status.
    async def ServerLive(self, request: Any, grpc_context: Any) -> Any:
        return await self.grpc.call("ServerLive", request, grpc_context)

    async def ServerReady(self, request: Any, grpc_context: Any) -> Any:
        return await self.grpc.call("ServerReady", request, grpc_context)

    async def ModelReady(self, request: Any, grpc_context: Any) -> Any:
        return await self.grpc.call("ModelReady", request, grpc_context)

    async def ServerMetadata(self, request: Any, grpc_context: Any) -> Any:
        return await self.grpc.call("ServerMetadata", request, grpc_context)

    async def ModelMetadata(self, request: Any, grpc_context: Any) -> Any:
        return await self.grpc.call("ModelMetadata", request, grpc_context)

    async def ModelInfer(self, request: Any, grpc_context: Any) -> Any:
        return await self.grpc.call("ModelInfer", request, grpc_context)

    async def RepositoryIndex(self, request: Any, grpc_context: Any) -> Any:
        return await self.grpc.call("RepositoryIndex", request, grpc_context)

    async def RepositoryModelLoad(self, request: Any, grpc_context: Any) -> Any:
        return await self.grpc.call("RepositoryModelLoad", request, grpc_context)

    async def RepositoryModelUnload(self, request: Any, grpc_context: Any) -> Any:
        return await self.grpc.call("RepositoryModelUnload", request, grpc_context)


def request_log_file(replica: str, rotation: RotationSettings | None = None) -> RotatingFile:
    """The replica's request lines, in their own file beside Serve's replica logs
    (``logs/serve/reengage_requests_<replica>.jsonl`` of the Ray session), rotated by size
    and age (``server.request_log_rotation``). Not stderr: Ray's log monitor tails every
    ``worker-*.err`` and publishes it line by line through the GCS, a cost on every
    request (docs/benchmarks.md, "Single customers: what moved")."""
    from ray.serve._private.logging_utils import get_serve_logs_dir

    rotation = rotation or RotationSettings()
    path = Path(get_serve_logs_dir()) / f"reengage_requests_{replica}.jsonl"
    # one writer (this replica): a line reaches the file when written, no per-line stat
    return RotatingFile(
        path,
        max_bytes=rotation.max_bytes,
        max_age_s=rotation.max_age_s,
        backups=rotation.backups,
        mode=0o640,
        shared=False,
    )
