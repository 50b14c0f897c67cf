"""Who sent a request, for the per-source rate of refused-call audit lines.

The connection's peer (ASGI ``scope["client"]``) is the source, unless the peer is one of
``auth.trusted_proxies``: then the source is the right-most ``X-Forwarded-For`` address
that is not a trusted proxy. A proxy trusted here must append the address it received
the request from, as nginx, Envoy or a cloud load balancer do; the entries to the left
of the one it appended are the client's own words and are never read. With no trusted
proxy (the default) the header is ignored.

Ray Serve's own proxies do not append: its Python proxy hands the replica the ASGI scope
it received, so the peer is already the caller; in HAProxy mode the peer is HAProxy
(``127.0.0.1`` for a replica on its node), which forwards the client's header unchanged.
Trusting either would let a caller choose its own source: docs/operations.md.

It runs on refused calls only, never on an answered request.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
UNKNOWN = "unknown"
_XFF = b"x-forwarded-for"
_MAX_HOPS = 32  # a longer header is a client's, not a chain of proxies


def parse_address(text: str) -> Address | None:
    """An IP address from ``1.2.3.4``, ``1.2.3.4:80``, ``::1`` or ``[::1]:80``; else None."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]  # IPv4 with a port
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


class ClientSource:
    """The source of a request's scope, given the trusted proxies' networks."""

    def __init__(self, trusted: Iterable[Network]) -> None:
        self.trusted = tuple(trusted)

    def is_trusted(self, address: Address | None) -> bool:
        return address is not None and any(address in net for net in self.trusted)

    def __call__(self, scope: Mapping[str, Any]) -> str:
        client = scope.get("client")
        if not client:
            return UNKNOWN
        peer = str(client[0])
        if not self.trusted or not self.is_trusted(parse_address(peer)):
            return peer
        hops = _forwarded_for(scope)
        for hop in reversed(hops[-_MAX_HOPS:]):
            address = parse_address(hop)
            if address is None:
                return UNKNOWN  # a trusted proxy appends addresses: this one is no proxy's
            if not self.is_trusted(address):
                return str(address)
        return str(parse_address(hops[0])) if hops else peer  # all trusted: the first hop


def _forwarded_for(scope: Mapping[str, Any]) -> list[str]:
    """The ``X-Forwarded-For`` entries, in order, over every such header."""
    values = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == _XFF]
    return [hop.strip() for hop in ",".join(values).split(",") if hop.strip()]
