"""Live call sessions in Redis: one round trip to load, one atomic compare-and-set to save.

A session is saved together with the TwiML answer it produced, keyed by Twilio's
idempotency token, in one Lua script: a retried webhook then finds the very answer
the first delivery got, and of two concurrent deliveries only one moves the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from flows.model import CallState, Channel, Decision, Identification
from storage.keys import (
    CALL_LOCK_TTL_MS,
    CALL_LOCK_WAIT_S,
    CALL_SESSION_TTL_S,
    IDEMPOTENCY_TTL_S,
    idempotency_key,
    lock_key,
    session_key,
)

__all__ = ["CallSessions", "decode_state", "encode_state"]

# Saves only if the stored session still has the seq the caller loaded (-1: no session yet).
_COMPARE_AND_SET = """
local current = redis.call('GET', KEYS[1])
local expected = tonumber(ARGV[1])
if current then
  if cjson.decode(current)['seq'] ~= expected then return 0 end
elseif expected ~= -1 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
if ARGV[4] ~= '' then
  redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[5])
end
return 1
"""

NO_SESSION = -1
# Deletes the lock only if it is still ours (it may have expired and been taken).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def encode_state(state: CallState) -> str:
    return json.dumps(dataclasses.asdict(state), separators=(",", ":"))


def decode_state(raw: str | bytes) -> CallState:
    fields: dict[str, Any] = json.loads(raw)
    fields["trail"] = tuple(fields["trail"])
    fields["spoken"] = tuple(fields["spoken"])
    if fields["action"] is not None:
        fields["action"] = Decision(fields["action"])
    fields["channel"] = Channel(fields["channel"])
    fields["identification"] = Identification(fields["identification"])
    return CallState(**fields)


class CallSessions:
    """Call sessions and the answers already given (the client must decode responses)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._compare_and_set = redis.register_script(_COMPARE_AND_SET)
        self._release = redis.register_script(_RELEASE)

    async def load(self, call_sid: str, token: str) -> tuple[CallState | None, str | None]:
        """The call's state and, if this webhook was answered before, that answer."""
        raw_state, answer = await self._redis.mget(session_key(call_sid), idempotency_key(call_sid, token or "-"))
        state = decode_state(raw_state) if raw_state is not None else None
        return state, answer if token else None

    @contextlib.asynccontextmanager
    async def exclusive(self, call_sid: str) -> AsyncIterator[bool]:
        """Hold the call's lock while one webhook is handled (yields False if it could not be had).

        Deliveries of the same webhook wait here for the first to finish, then find its
        answer; the lock expires by itself if its holder dies.
        """
        key, owner = lock_key(call_sid), secrets.token_hex(8)
        deadline = time.monotonic() + CALL_LOCK_WAIT_S
        held = False
        while not (held := bool(await self._redis.set(key, owner, nx=True, px=CALL_LOCK_TTL_MS))):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        try:
            yield held
        finally:
            if held:
                # A release that fails (Redis gone) must not turn an answer already decided
                # into an error: the lock expires by itself.
                with contextlib.suppress(RedisError):
                    await self._release(keys=[key], args=[owner])

    async def answer_for(self, call_sid: str, token: str) -> str | None:
        """The answer already given to the webhook carrying ``token``, if any."""
        if not token:
            return None
        answer: str | None = await self._redis.get(idempotency_key(call_sid, token))
        return answer

    async def save(self, state: CallState, *, expected_seq: int | None, token: str, answer: str) -> bool:
        """Store ``state`` (and ``answer`` under ``token``) unless another request moved the call first."""
        saved = await self._compare_and_set(
            keys=[session_key(state.call_sid), idempotency_key(state.call_sid, token or "-")],
            args=[
                NO_SESSION if expected_seq is None else expected_seq,
                encode_state(state),
                CALL_SESSION_TTL_S,
                answer if token else "",
                IDEMPOTENCY_TTL_S,
            ],
        )
        return bool(saved)
