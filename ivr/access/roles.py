"""Who may call what: every handler declares its roles; each door's middleware enforces them.

A handler marked ``@requires("staff")`` may be called by staff and admins; a door
refuses to serve a handler that declared nothing (a bug, not a default). Admins may
call every route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

__all__ = ["ADMIN", "PRINCIPAL", "PUBLIC", "Principal", "declared_roles", "may_call", "requires"]

ADMIN = "admin"
PUBLIC = "public"  # a page anyone may load (it shows no evidence: sign-in, the agent page's shell)
_ROLES_ATTR = "__ivr_roles__"


@dataclass(frozen=True)
class Principal:
    """Who is asking: a token's holder or a signed-in staff member."""

    name: str
    role: str
    token_id: int | None


PRINCIPAL = web.RequestKey("principal", Principal)


def requires(*roles: str) -> Callable[[Handler], Handler]:
    def mark(handler: Handler) -> Handler:
        setattr(handler, _ROLES_ATTR, frozenset(roles))
        return handler

    return mark


def declared_roles(handler: Callable[..., Awaitable[Any]]) -> frozenset[str] | None:
    return getattr(handler, _ROLES_ATTR, None)


def may_call(role: str, roles: frozenset[str]) -> bool:
    return role in roles or role == ADMIN
