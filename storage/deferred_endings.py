"""Call endings that could not be stored when Twilio reported them, kept in Redis until they are.

Twilio sends the status callback once and does not retry it. If Postgres is down at that
moment, the ending (and the menu keypresses still in the call's session) would be lost;
instead the ending waits here, the session stays where it is, and the service stores
both once Postgres answers again (the session lives for hours, this list as long as it
must).
"""

from __future__ import annotations

import dataclasses
import json
from typing import cast

from redis.asyncio import Redis

from storage.evidence import CallEnding

__all__ = ["DEFERRED_ENDINGS_KEY", "DeferredEndings"]

DEFERRED_ENDINGS_KEY = "ivr:endings:deferred"


class DeferredEndings:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def add(self, ending: CallEnding) -> None:
        await self._redis.rpush(DEFERRED_ENDINGS_KEY, json.dumps(dataclasses.asdict(ending)))

    async def take(self) -> CallEnding | None:
        """The oldest ending waiting (removed from the list: put it back if it fails again)."""
        # Without a count LPOP answers one element (or None), a str as the client decodes responses.
        raw = cast("str | None", await self._redis.lpop(DEFERRED_ENDINGS_KEY))
        return CallEnding(**json.loads(raw)) if raw else None

    async def waiting(self) -> int:
        count: int = await self._redis.llen(DEFERRED_ENDINGS_KEY)
        return count
