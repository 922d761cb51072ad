"""Where events may be sent: https to a public address, never to us or our neighbours.

A subscription's URL could otherwise make the service a proxy into its own network (SSRF):
its host must resolve only to global unicast addresses — not loopback, private, link-local,
shared, documentation or otherwise reserved ranges, nor an IPv6 form embedding one. It is
checked when the subscription is added and again when each connection is made (DNS can
change, and a name can be made to resolve somewhere else later): the delivery worker's
resolver refuses such addresses, so what is checked is what is connected to.
``EVENT_ALLOW_PRIVATE_TARGETS=true`` lifts both rules (plain http, any address) for tests
and labs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

__all__ = ["GuardedResolver", "TargetRefused", "check_target", "check_url", "is_public"]

# A name that takes longer than this to resolve is refused at add time (the API answers in time).
RESOLVE_TIMEOUT_S = 5.0
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class TargetRefused(Exception):
    """A URL events may not be sent to; ``message`` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A global unicast address (an IPv6 form of an IPv4 address judged by that address)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public(embedded)
    return address.is_global and not address.is_multicast


def check_url(url: str, *, allow_private: bool) -> None:
    """The URL's form: absolute, https (http only with the flag), a host, no credentials."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise TargetRefused("not a URL") from None
    allowed = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed or not parts.hostname:
        raise TargetRefused(f"must be an absolute {' or '.join(allowed)} URL")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("must not carry credentials (events are signed instead)")
    if parts.fragment:
        raise TargetRefused("must not have a fragment")
    literal = _literal(parts.hostname)
    if literal is not None and not allow_private and not is_public(literal):
        raise TargetRefused(f"{literal} is not a public address")


async def check_target(url: str, *, allow_private: bool) -> None:
    """``check_url``, and every address its host resolves to is public (add time)."""
    check_url(url, allow_private=allow_private)
    host = urlsplit(url).hostname
    assert host is not None  # check_url insists on one
    if allow_private or _literal(host) is not None:
        return
    loop = asyncio.get_running_loop()
    try:
        found = await asyncio.wait_for(loop.getaddrinfo(host, 443, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_S)
    except (OSError, TimeoutError):
        raise TargetRefused(f"{host} does not resolve") from None
    _only_public(host, [str(info[4][0]) for info in found])


class GuardedResolver(AbstractResolver):
    """Resolves as aiohttp does, and refuses a host with any address that is not public."""

    def __init__(self) -> None:
        self._resolver = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._resolver.resolve(host, port, family)
        _only_public(host, [r["host"] for r in found])
        return found

    async def close(self) -> None:
        await self._resolver.close()


def _only_public(host: str, addresses: list[str]) -> None:
    if not addresses:
        raise TargetRefused(f"{host} does not resolve")
    for text in addresses:
        address = ipaddress.ip_address(text.partition("%")[0])  # drop an IPv6 scope id
        if not is_public(address):
            raise TargetRefused(f"{host} resolves to {address}, which is not a public address")


def _literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
