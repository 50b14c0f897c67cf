"""Draining: a stopping server finishes what it took and takes nothing new.

:data:`STATE` says whether this process drains and counts the HTTP requests it runs.
``serving.deployments.drain_signal`` (``reengage stop``) turns it on in a Serve replica;
``serving.middleware.drain.Drain`` answers new requests with a 503 while it is on.
"""

from __future__ import annotations


class DrainState:
    """Whether this process drains, and how many HTTP requests it is running."""

    def __init__(self) -> None:
        self.draining = False
        self.inflight = 0  # changed on the event loop only; other threads just read it

    def start(self) -> None:
        self.draining = True


STATE = DrainState()
