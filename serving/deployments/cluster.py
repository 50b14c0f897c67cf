"""What the cluster the application lands on means for its settings.

Embedded state (the LMDB online store, the sqlite bandit state) lives in files on one
machine. On a multi-node cluster each node would get its own copy: rewards sent to a
replica on another node than the decision's answer 404, and features differ per node
(docs/cluster.md). So a multi-node cluster with embedded state gets a loud warning,
naming the one switch that fixes it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

from serving.settings import Settings

log = logging.getLogger("reengage")


def auth_like_head() -> None:
    """``ray start`` turned token auth on if a token exists (~/.ray/auth_token); ray.init
    with an explicit address never does (Ray 2.60): apply the head's rule to this driver."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    with contextlib.suppress(ImportError):  # other Ray versions: nothing to mirror
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )

        maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def embedded_state_warning(settings: Settings, nodes: int) -> str | None:
    """The warning for ``nodes`` alive Ray nodes, or None when the state is fine there."""
    embedded = [
        name
        for name, backend in (
            ("features", settings.features.backend),
            ("bandit", settings.bandit.backend),
        )
        if backend == "embedded"
    ]
    if nodes <= 1 or not embedded:
        return None
    return (
        f"WARNING: this Ray cluster has {nodes} nodes but the {' and '.join(embedded)} state "
        "is embedded (node-local files): each node sees its own copy, and rewards reaching "
        "another node's replica are lost (404 decision_not_found). Use one Redis for all state: "
        "`reengage serve --state redis --redis-url redis://HOST:6379/0`, "
        "or REENGAGE_STATE=redis REENGAGE_REDIS_URL=... "
        "(serve.yaml: args.state / args.redis_url)."
    )


def alive_nodes() -> int:
    """Alive nodes of the Ray cluster this process is connected to (1 when not connected)."""
    import ray

    if not ray.is_initialized():
        return 1
    return sum(1 for n in ray.nodes() if n.get("Alive"))


_warned: set[str] = set()


def warn_embedded_state(settings: Settings, terminal: bool = False) -> str | None:
    """Warn (once per process) when the current cluster has several nodes and state is embedded.

    ``terminal``: in red on stderr (the operator's ``reengage serve``), else a log WARNING.
    """
    message = embedded_state_warning(settings, alive_nodes())
    if message and message not in _warned:
        _warned.add(message)
        if terminal:
            print(f"\n\033[1;31m{message}\033[0m\n", file=sys.stderr)
        else:
            log.warning(message)
    return message
