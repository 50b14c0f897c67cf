"""An operator's driver for tests/e2e/test_cluster.py, in its own process.

A pytest process can be connected to one Ray cluster only (the e2e session's), so the
two-node cluster lives here: ``ray.cluster_utils.Cluster`` starts a head and a worker
node, each with its own temp dir (so each unpacks the shipped working_dir itself). The
driver then does what ``reengage serve --address`` does with ``server.artifacts=
working_dir`` (``serving.server.shipped``: stage, upload with ``ray.init``), renames the
operator's workspace away (nothing on any node may read it from then on), deploys, waits
until ready, and prints one JSON line: nodes and replicas (id, node, pid). Then it
answers ``details`` (the replicas again) and ``stop`` (Serve and the cluster shut down)
on stdin.

Argument: a JSON object ``{"args", "http_port", "temp_dirs", "rename"}``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def replicas() -> list[dict[str, Any]]:
    from ray.serve.context import _get_global_client

    details = _get_global_client().get_serve_details()
    out = []
    for app in details.get("applications", {}).values():
        for name, dep in app.get("deployments", {}).items():
            for r in dep.get("replicas", []):
                out.append(
                    {
                        "deployment": name,
                        "replica_id": r["replica_id"],
                        "node_id": r.get("node_id"),
                        "pid": r.get("pid"),
                        "state": r.get("state"),
                    }
                )
    return out


def main() -> None:
    import ray
    from ray import serve
    from ray.cluster_utils import Cluster

    from serving.app import APP_NAME, build_app
    from serving.server import grpc_options, shipped, wait_ready
    from serving.settings import load_settings

    config = json.loads(sys.argv[1])
    args, (head_tmp, worker_tmp) = config["args"], config["temp_dirs"]
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "temp_dir": head_tmp, "include_dashboard": False},
    )
    try:
        cluster.add_node(num_cpus=1, temp_dir=worker_tmp)
        cluster.wait_for_nodes()
        settings = load_settings(args)
        env = {k: v for k, v in os.environ.items() if k.startswith("RAY_SERVE")}
        with shipped(settings) as runtime_env:
            runtime_env = {**(runtime_env or {}), "env_vars": env}
            ray.init(
                address=cluster.address,
                runtime_env=runtime_env,
                logging_level="WARNING",
                log_to_driver=False,
            )
        os.rename(
            *config["rename"]
        )  # the operator's model repo and Feast repo are gone from every node
        serve.start(
            proxy_location="HeadOnly",  # one HTTP port per machine: two nodes here
            http_options={"host": "127.0.0.1", "port": config["http_port"]},
            grpc_options=grpc_options(settings),
        )
        serve.run(build_app(args), name=APP_NAME, route_prefix="/", blocking=False)
        wait_ready(f"http://127.0.0.1:{config['http_port']}", timeout_s=600)
        nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
        print(json.dumps({"nodes": nodes, "replicas": replicas()}), flush=True)
        for line in sys.stdin:
            if line.strip() == "details":
                print(json.dumps({"replicas": replicas()}), flush=True)
            elif line.strip() == "stop":
                break
        serve.shutdown()
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main()
