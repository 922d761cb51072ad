"""Every view of evidence is written to the access log first: who, what, why, from where.

Both doors that show evidence (the JSON API and the staff pages) describe the person
looking as a ``Viewer``; the services in ``ivr.evidence`` note the view before they
read anything, so an evidence read that is not in the access log cannot happen.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from aiohttp import web

from ivr.access.roles import PRINCIPAL, Principal
from ivr.time_budget import POOL_ACQUIRE_S
from storage.access_log import note_access
from storage.ledger import chained

__all__ = ["REASON_HEADER", "Viewer", "has_nul", "note_view", "viewer_of"]

REASON_HEADER = "X-Access-Reason"


@dataclass(frozen=True)
class Viewer:
    """Who is looking at evidence, the reason they gave, and their address."""

    principal: Principal
    reason: str | None
    remote: str | None


def viewer_of(request: web.Request) -> Viewer:
    """The viewer of a request that passed its door's sign-in (``?reason=`` or the header)."""
    reason = request.query.get("reason") or request.headers.get(REASON_HEADER)
    return Viewer(request[PRINCIPAL], reason or None, request.remote)


def has_nul(request: web.Request) -> bool:
    """Whether anything of the request that reaches a query holds NUL (Postgres text cannot)."""
    given = [*request.query.values(), *request.match_info.values(), request.headers.get(REASON_HEADER, "")]
    return any("\x00" in value for value in given)


async def note_view(pool: asyncpg.Pool, viewer: Viewer, action: str, target: str) -> None:
    """Append the view to the access log (chained), in a transaction of its own."""
    who = viewer.principal
    async with pool.acquire(timeout=POOL_ACQUIRE_S) as conn, chained(conn) as chain:
        await note_access(
            chain,
            token_id=who.token_id,
            actor=who.name,
            role=who.role,
            action=action,
            target=target,
            reason=viewer.reason,
            remote=viewer.remote,
        )
