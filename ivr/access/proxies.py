"""The client's own address behind a trusted reverse proxy.

Behind nginx (docker-compose, `--scale app=3`) every request comes from the proxy:
per-address rate limits would then be shared by all staff, and the access log would
name the proxy. ``X-Forwarded-For`` is believed only from the proxies named in
``TRUSTED_PROXIES``; anyone else could write anything there.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web
from aiohttp.typedefs import Handler

from ivr.appkeys import SETTINGS

__all__ = ["client_address", "forwarded_middleware"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _trusted(address: str | None, proxies: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(peer: str | None, forwarded_for: str, proxies: Sequence[Network]) -> str | None:
    """The nearest address in the chain that is not one of our proxies (the peer if none is trusted).

    Each proxy appends the address it heard from, so the list is read from the right; the
    first hop not trusted is the client as far as we can vouch for it.
    """
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop if _is_address(hop) else peer
    return hops[0] if hops and _is_address(hops[0]) else peer


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@web.middleware
async def forwarded_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    proxies = request.config_dict[SETTINGS].trusted_proxies
    if proxies and "X-Forwarded-For" in request.headers:
        client = client_address(request.remote, request.headers["X-Forwarded-For"], proxies)
        if client is not None and client != request.remote:  # None only when the peer is None
            request = request.clone(remote=client)
    return await handler(request)
