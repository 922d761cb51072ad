"""The call lock: kept by a live holder however long it works, lapsing soon after a dead one."""

from __future__ import annotations

import asyncio
import secrets
import time

from redis.asyncio import Redis

from ivr.time_budget import CALL_LOCK_WAIT_S
from storage.keys import CALL_LOCK_TTL_MS, lock_key
from storage.sessions import CallSessions


async def test_a_slow_holder_keeps_the_lock_and_a_dead_ones_lapses(storage) -> None:
    redis = Redis.from_url(storage.redis_url, decode_responses=True)
    sessions = CallSessions(redis, lock_wait_s=CALL_LOCK_WAIT_S)
    call_sid = "CA" + secrets.token_hex(16)
    try:
        async with sessions.turn(call_sid, "tok-1") as first:
            assert first.held
            await asyncio.sleep(CALL_LOCK_TTL_MS / 1000 * 1.5)  # longer than the lock lives unrenewed
            assert await redis.get(lock_key(call_sid)) == first.owner
        assert await redis.get(lock_key(call_sid)) is None  # released on the way out

        # A process killed while holding the lock: nobody renews it.
        await redis.set(lock_key(call_sid), "dead-owner", px=CALL_LOCK_TTL_MS)
        started = time.monotonic()
        async with sessions.turn(call_sid, "tok-2") as second:
            waited = time.monotonic() - started
        assert second.held
        assert CALL_LOCK_TTL_MS / 1000 * 0.8 <= waited <= CALL_LOCK_TTL_MS / 1000 + 1.0
    finally:
        await redis.aclose()
