"""How fast staff sign-in may be tried: per client address, and per address and username.

Each address has ``LOGIN_RATE_PER_MIN`` tries a minute, whatever it tries (a token, any
username). Wrong passwords for one username from one address slow that pair alone: a
few are free, then each doubles the wait before the next (``LOGIN_FREE_FAILURES``,
``LOGIN_MAX_DELAY_S``). Nothing is shared across addresses, so nobody can lock a user,
or every token sign-in, out from elsewhere; each refusal is counted in
``ivr_sign_in_throttled_total`` and each failure in ``ivr_sign_in_failures_total``, the
alerts for guessing spread over many addresses.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum

from aiohttp import web

from ivr.appkeys import METRICS, RATE_LIMITER, SETTINGS

__all__ = ["Method", "Throttled", "address_bucket", "refusal", "signed_in", "failed"]

LOGIN_WINDOW_S = 60
_ADDRESS = "login-address"
_ADDRESS_USER = "login-address-user"
# One IPv6 subscriber holds a whole /64: counted per address, each try could come from
# a fresh one.
_IPV6_PREFIX = 64


class Throttled(StrEnum):
    """Which limit refused a sign-in (the metric's ``reason``)."""

    ADDRESS_RATE = "address_rate"
    USER_DELAY = "user_delay"


class Method(StrEnum):
    """How someone tried to sign in (the failure metric's ``method``)."""

    PASSWORD = "password"
    TOKEN = "token"


def address_bucket(address: str | None) -> str:
    """The client address as limits count it: an IPv4 address, an IPv6 /64, or ``?``."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return "?"
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/{_IPV6_PREFIX}", strict=False))
    return str(ip)


def _pair(request: web.Request, username: str) -> str:
    return f"{address_bucket(request.remote)}|{username}"


async def refusal(request: web.Request, username: str) -> int | None:
    """Count this try; the seconds to wait if a limit refuses it (and the refusal counted)."""
    config = request.config_dict
    limits, settings = config[RATE_LIMITER], config[SETTINGS]
    wait = await limits.over(_ADDRESS, address_bucket(request.remote), settings.login_rate_per_min, LOGIN_WINDOW_S)
    reason = Throttled.ADDRESS_RATE
    if wait is None and username:
        wait, reason = await limits.delay_left(_ADDRESS_USER, _pair(request, username)), Throttled.USER_DELAY
    if wait is not None:
        config[METRICS].sign_in_throttled.labels(reason.value).inc()
    return wait


async def failed(request: web.Request, method: Method, username: str) -> int | None:
    """Note a failed sign-in; for a password, the wait now imposed on this address and username."""
    config = request.config_dict
    config[METRICS].sign_in_failures.labels(method.value).inc()
    if method is not Method.PASSWORD:
        return None  # a token is 256 random bits: the address's rate is all guessing needs
    settings = config[SETTINGS]
    return await config[RATE_LIMITER].note_failure(
        _ADDRESS_USER, _pair(request, username), settings.login_free_failures, settings.login_max_delay_s
    )


async def signed_in(request: web.Request, username: str) -> None:
    """A good password: this address's failures for the username are forgiven."""
    await request.config_dict[RATE_LIMITER].forget_failures(_ADDRESS_USER, _pair(request, username))
