"""Signed-in staff sessions in Redis: an opaque id in an HttpOnly cookie, the rest here.

A session only says who opened it; whether they still may is asked of Postgres on each
page load (the token still live, the user still enabled and at the same generation).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass

from redis.asyncio import Redis

__all__ = ["SESSION_TTL_S", "WebSession", "WebSessions"]

# A working day: staff sign in again the next morning; an abandoned session dies overnight.
SESSION_TTL_S = 8 * 60 * 60
_PREFIX = "ivr:web:"


@dataclass(frozen=True)
class WebSession:
    name: str
    role: str
    token_id: int | None  # when signed in with an API token rather than a password
    csrf: str
    # The user's session generation at sign-in (a password, a disable since: ended).
    # Sessions stored before generations existed read as 0, the column's first value.
    generation: int = 0


class WebSessions:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def open(self, name: str, role: str, token_id: int | None, generation: int = 0) -> tuple[str, WebSession]:
        session_id = secrets.token_urlsafe(32)
        session = WebSession(name, role, token_id, secrets.token_urlsafe(24), generation)
        await self._redis.set(_PREFIX + session_id, json.dumps(asdict(session)), ex=SESSION_TTL_S)
        return session_id, session

    async def load(self, session_id: str) -> WebSession | None:
        raw = await self._redis.get(_PREFIX + session_id) if session_id else None
        return WebSession(**json.loads(raw)) if raw else None

    async def close(self, session_id: str) -> None:
        await self._redis.delete(_PREFIX + session_id)
