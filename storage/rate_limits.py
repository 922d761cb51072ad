"""Request counters and failure delays in Redis, shared by every process.

Each counter's window opens with its first request and lasts ``window_s`` (SET … NX EX
creates it with its lifetime, INCR keeps that lifetime): one round trip, no clock
boundary to slip past, and it works on Redis 6.2 (the embedded server) as on 7.

A failure delay slows whoever keeps failing rather than blocking them: past a few free
failures each one makes the next try wait twice as long, up to a cap, and a success
forgets them. It is kept per pair (an address and a username), so nobody elsewhere is
held up by someone else's guessing.
"""

from __future__ import annotations

from redis.asyncio import Redis

__all__ = ["FAILURE_MEMORY_S", "RateLimiter"]

_PREFIX = "ivr:rate:"
# Failures are remembered this long after the last one: longer than the longest delay
# (settings cap it at half this), so a patient guesser stays slowed, while someone who
# mistyped a few times in the morning starts afresh an hour later.
FAILURE_MEMORY_S = 60 * 60
# 2**20 s is weeks: past that the cap has long applied, and the power stays small.
_MAX_DOUBLINGS = 20


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

    async def delay_left(self, scope: str, who: str) -> int | None:
        """The seconds ``who`` must still wait after their failures, or None to go ahead."""
        left_ms = int(await self._redis.pttl(self._delay_key(scope, who)))
        return -(-left_ms // 1000) if left_ms > 0 else None  # whole seconds, rounded up

    async def note_failure(self, scope: str, who: str, free: int, max_delay_s: int) -> int | None:
        """Count a failure by ``who``; past ``free`` of them, make ``who`` wait 1 s, 2 s,
        4 s … (at most ``max_delay_s``) before the next try. Returns the wait imposed."""
        failures = self._failures_key(scope, who)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(failures)
            pipe.expire(failures, FAILURE_MEMORY_S)
            count, _ = await pipe.execute()
        if int(count) <= free:
            return None
        delay = min(1 << min(int(count) - free - 1, _MAX_DOUBLINGS), max_delay_s)
        await self._redis.set(self._delay_key(scope, who), 1, ex=delay)
        return delay

    async def forget_failures(self, scope: str, who: str) -> None:
        """``who`` succeeded: their failures and any delay are gone."""
        await self._redis.delete(self._failures_key(scope, who), self._delay_key(scope, who))

    def _failures_key(self, scope: str, who: str) -> str:
        return f"{self._prefix}{scope}:failures:{who}"

    def _delay_key(self, scope: str, who: str) -> str:
        return f"{self._prefix}{scope}:delay:{who}"
