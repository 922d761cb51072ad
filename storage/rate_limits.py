"""Request counters in Redis, shared by every process.

Each counter's window opens with its first request and lasts ``window_s`` (SET … NX EX
creates it with its lifetime, INCR keeps that lifetime): one round trip, no clock
boundary to slip past, and it works on Redis 6.2 (the embedded server) as on 7.
"""

from __future__ import annotations

from redis.asyncio import Redis

__all__ = ["RateLimiter"]

_PREFIX = "ivr:rate:"


class RateLimiter:
    def __init__(self, redis: Redis, namespace: str = "") -> None:
        self._redis = redis
        self._prefix = f"{_PREFIX}{namespace}:" if namespace else _PREFIX

    async def over(self, scope: str, who: str, limit: int, window_s: int) -> int | None:
        """Count one request by ``who``; if that exceeds ``limit`` per window, the seconds to wait."""
        key = f"{self._prefix}{scope}:{who}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(key, 0, ex=window_s, nx=True)
            pipe.incr(key)
            pipe.ttl(key)
            _, count, ttl = await pipe.execute()
        return max(int(ttl), 1) if count > limit else None
