"""Live call sessions in Redis, moved in one round trip per webhook where that is safe.

A session holds the call's state and the keypresses not yet written to Postgres (they
go in with the call's next commit, or its ending). Every saved session carries a fresh
revision; a save names the revision it was computed from and succeeds only if that is
still the stored one, so of two deliveries racing on one call only one moves it.

Two ways to move a call:

* ``step``: no lock. If this webhook (by its idempotency token) moved the call already,
  that wins; a call another webhook holds locked is refused ("busy"); otherwise compare
  the revision and save. For steps that write nothing to Postgres.
* ``turn``: the call's lock (taken together with the load), then the commit, then the
  save and the release in one script. For steps that store evidence: no later copy of
  the webhook can then record what a caller was told was not recorded.

Each process remembers the sessions it saved last, so a call whose webhooks keep
landing on it needs no load at all; a remembered session that is out of date costs
nothing more than a load, because a refused ``step`` returns the stored session.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from flows.model import CallState, Channel, Decision, Identification, KeypressFact, KeypressOutcome
from storage.keys import (
    CALL_LOCK_RENEW_S,
    CALL_LOCK_TTL_MS,
    CALL_SESSION_TTL_S,
    ENDED_SESSION_TTL_S,
    lock_key,
    session_key,
)

__all__ = ["CallSessions", "PendingPress", "Session", "StepResult", "Turn", "decode_session", "encode_session"]

REV_LENGTH = 16  # hex characters of a session revision, stored in front of its JSON
NO_SESSION = ""  # the revision of a call that has no session yet
# Sessions remembered per process; beyond this the oldest are forgotten (a load then).
REMEMBERED_SESSIONS = 20_000
LOCK_POLL_S = 0.02

# A stored session is  <rev><token of the webhook that moved it last>\n<JSON>. Twilio sends
# a call's next webhook only after it has the answer to the last one, so a retry or a
# second delivery is always of the webhook that moved the call last (or of the one being
# answered now): that one token is all that needs remembering. Every script starts by
# reading both out of the stored value.
_READ = f"""
local current = redis.call('GET', KEYS[1])
local rev, token = '', ''
if current then
  rev = string.sub(current, 1, {REV_LENGTH})
  local newline = string.find(current, '\\n', {REV_LENGTH + 1}, true)
  if newline then token = string.sub(current, {REV_LENGTH + 1}, newline - 1) end
end
"""

# KEYS: session, lock. ARGV: expected rev, value, ttl, this webhook's token.
_STEP = (
    _READ
    + """
if ARGV[4] ~= '' and token == ARGV[4] then return {'answered', current} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'busy', ''} end
if rev ~= ARGV[1] then return {'moved', current or ''} end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return {'saved', ''}
"""
)

# KEYS: session, lock. ARGV: owner, lock ttl ms, this webhook's token.
_ENTER = (
    _READ
    + """
if ARGV[3] ~= '' and token == ARGV[3] then return {'answered', current} end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {'busy', ''} end
return {'held', current or ''}
"""
)

# KEYS: session, lock. ARGV: expected rev, value, ttl, owner.
_LEAVE = (
    _READ
    + """
local saved = 0
if rev == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  saved = 1
end
if ARGV[4] ~= '' and redis.call('GET', KEYS[2]) == ARGV[4] then redis.call('DEL', KEYS[2]) end
return saved
"""
)

# Deletes the lock only if it is still ours (it may have expired and been taken).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Extends the lock only while it is still ours.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


@dataclass(frozen=True)
class PendingPress:
    """A keypress heard by the service and not yet stored: what, under which token, when."""

    fact: KeypressFact
    token: str
    received_at: str  # ISO 8601, UTC: the moment the webhook carrying it arrived


@dataclass(frozen=True)
class Session:
    """A live call: its state, keypresses not yet stored, and the webhook that moved it last.

    ``answer`` is what that webhook was told, kept only when it is not simply what the
    state replays (the engine can rebuild every prompt word for word from the state).
    """

    state: CallState
    pending: tuple[PendingPress, ...] = ()
    token: str = ""
    answer: str | None = None
    rev: str = NO_SESSION


class StepResult(StrEnum):
    SAVED = "saved"
    ANSWERED = "answered"  # this webhook moved the call before: repeat what it was told
    MOVED = "moved"  # the call is not where the caller's copy was: here is where it is
    BUSY = "busy"  # another webhook of the call holds its lock


@dataclass
class Turn:
    """The call's lock, held while one webhook's evidence is committed."""

    held: bool
    session: Session | None = None
    answered: bool = False  # this webhook moved the call before: ``session`` is where it left it
    owner: str = field(default_factory=lambda: secrets.token_hex(8))
    left: bool = False


_STATE_FIELDS = tuple(f.name for f in dataclasses.fields(CallState))
_STATE_DEFAULTS = {f.name: f.default for f in dataclasses.fields(CallState) if f.default is not dataclasses.MISSING}
_ABSENT = object()


def _state_fields(state: CallState) -> dict[str, Any]:
    """The state's fields that differ from their defaults (the rest are left out: a smaller session)."""
    fields = {}
    for name in _STATE_FIELDS:
        value = getattr(state, name)
        if _STATE_DEFAULTS.get(name, _ABSENT) != value:
            fields[name] = value
    return fields


def encode_session(session: Session, rev: str) -> str:
    """``rev``, the token, then compact JSON; prompts heard before pending keypresses are kept once."""
    body: dict[str, Any] = {"s": _state_fields(session.state)}
    if session.answer is not None:
        body["a"] = session.answer
    if session.pending:
        texts: list[str] = []
        presses = []
        for press in session.pending:
            fact = press.fact
            if fact.heard not in texts:
                texts.append(fact.heard)
            presses.append(
                [
                    fact.seq,
                    fact.step,
                    fact.digits,
                    fact.finished_on_key,
                    fact.outcome.value,
                    texts.index(fact.heard),
                    fact.lang,
                    press.token,
                    press.received_at,
                ]
            )
        body["p"], body["t"] = presses, texts
    return rev + session.token + "\n" + json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def decode_session(raw: str) -> Session | None:
    """The session stored as ``raw`` ('' or unreadable: none, the caller is told to call again)."""
    token, newline, text = raw[REV_LENGTH:].partition("\n")
    if not newline:
        return None
    try:
        body = json.loads(text)
        state = _decode_state(body["s"])
    except (ValueError, KeyError, TypeError):
        return None
    texts = body.get("t", [])
    pending = tuple(
        PendingPress(KeypressFact(seq, step, digits, key, KeypressOutcome(outcome), texts[heard], lang), token, at)
        for seq, step, digits, key, outcome, heard, lang, token, at in body.get("p", [])
    )
    return Session(state, pending, token, body.get("a"), raw[:REV_LENGTH])


_DECODERS = {
    "trail": tuple,
    "spoken": tuple,
    "notices_heard": tuple,
    "action": Decision,
    "channel": Channel,
    "identification": Identification,
}


def _decode_state(fields: dict[str, Any]) -> CallState:
    for name, decode in _DECODERS.items():
        if fields.get(name) is not None:
            fields[name] = decode(fields[name])
    return CallState(**fields)


def new_rev() -> str:
    return secrets.token_hex(REV_LENGTH // 2)


class CallSessions:
    """Call sessions and the answers already given (the client must decode responses)."""

    def __init__(self, redis: Redis, *, lock_wait_s: float) -> None:
        self._redis = redis
        # How long a committing webhook waits for its call's lock: the caller's time budget decides.
        self._lock_wait_s = lock_wait_s
        self._step = redis.register_script(_STEP)
        self._enter = redis.register_script(_ENTER)
        self._leave = redis.register_script(_LEAVE)
        self._release = redis.register_script(_RELEASE)
        self._renew = redis.register_script(_RENEW)
        self._recent: OrderedDict[str, Session] = OrderedDict()

    def recalled(self, call_sid: str) -> Session | None:
        """The session this process saved or saw last for the call (may be out of date)."""
        return self._recent.get(call_sid)

    def forget(self, call_sid: str) -> None:
        self._recent.pop(call_sid, None)

    async def retire(self, call_sid: str) -> None:
        """The call is over and its evidence stored: let its session lapse soon."""
        self.forget(call_sid)
        with contextlib.suppress(RedisError):  # it lapses with its own lifetime all the same
            await self._redis.expire(session_key(call_sid), ENDED_SESSION_TTL_S)

    async def load(self, call_sid: str, token: str) -> tuple[Session | None, bool]:
        """The call's session, and whether this webhook (by ``token``) is the one that moved it last."""
        raw = cast("str | None", await self._redis.get(session_key(call_sid)))  # the client decodes responses
        session = self._remember(call_sid, raw or "")
        return session, bool(token) and session is not None and session.token == token

    async def step(self, session: Session | None, moved: Session) -> tuple[StepResult, Session | None]:
        """Save ``moved`` (computed from ``session``; None: a new call) without the lock.

        Returns SAVED; ANSWERED or MOVED with the stored session (None: there is none);
        or BUSY.
        """
        call_sid, rev = moved.state.call_sid, new_rev()
        kind, detail = await self._step(
            keys=[session_key(call_sid), lock_key(call_sid)],
            args=[session.rev if session else NO_SESSION, encode_session(moved, rev), CALL_SESSION_TTL_S, moved.token],
        )
        result = StepResult(kind)
        if result is StepResult.SAVED:
            self._keep(call_sid, dataclasses.replace(moved, rev=rev))
            return result, None
        if result is StepResult.BUSY:
            return result, None
        return result, self._remember(call_sid, detail)

    @contextlib.asynccontextmanager
    async def turn(self, call_sid: str, token: str) -> AsyncIterator[Turn]:
        """Hold the call's lock (loading its session with it) while one webhook is handled.

        Deliveries of the same webhook wait here for the first to finish, then find its
        answer; a dead holder's lock lapses by itself. ``turn.held`` is False if the lock
        could not be had in time, or if this webhook had moved the call already
        (``turn.answered``, with the session it left).
        """
        turn = Turn(held=False)
        keys = [session_key(call_sid), lock_key(call_sid)]
        deadline = time.monotonic() + self._lock_wait_s
        while True:
            kind, detail = await self._enter(keys=keys, args=[turn.owner, CALL_LOCK_TTL_MS, token])
            if kind == "answered":
                turn.answered, turn.session = True, self._remember(call_sid, detail)
                break
            if kind == "held":
                turn.held, turn.session = True, self._remember(call_sid, detail)
                break
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(LOCK_POLL_S)
        renewal = asyncio.create_task(self._keep_renewed(keys[1], turn.owner)) if turn.held else None
        try:
            yield turn
        finally:
            if renewal is not None:
                renewal.cancel()
            if turn.held and not turn.left:
                # A release that fails (Redis gone) must not turn an answer already decided
                # into an error: the lock expires by itself.
                with contextlib.suppress(RedisError):
                    await self._release(keys=[keys[1]], args=[turn.owner])

    async def save(self, moved: Session, *, expected: Session | None, turn: Turn | None = None) -> bool:
        """Store ``moved`` unless another request moved the call first; with ``turn``, let go of the lock."""
        call_sid, rev = moved.state.call_sid, new_rev()
        saved = await self._leave(
            keys=[session_key(call_sid), lock_key(call_sid)],
            args=[
                expected.rev if expected else NO_SESSION,
                encode_session(moved, rev),
                CALL_SESSION_TTL_S,
                turn.owner if turn else "",
            ],
        )
        if turn is not None:
            turn.left = True
        if saved:
            self._keep(call_sid, dataclasses.replace(moved, rev=rev))
        else:
            self.forget(call_sid)
        return bool(saved)

    async def _keep_renewed(self, key: str, owner: str) -> None:
        """Renew the lock until cancelled or no longer ours; a renewal Redis refuses is tried again.

        Ending when the lock has gone matters too: a cancellation swallowed by Python
        3.11's ``wait_for`` (see storage/background.py) must not leave it renewing forever.
        """
        while True:
            await asyncio.sleep(CALL_LOCK_RENEW_S)
            try:
                if not await self._renew(keys=[key], args=[owner, CALL_LOCK_TTL_MS]):
                    return
            except RedisError:
                continue

    def _remember(self, call_sid: str, raw: str) -> Session | None:
        session = decode_session(raw)
        if session is None:
            self.forget(call_sid)
        else:
            self._keep(call_sid, session)
        return session

    def _keep(self, call_sid: str, session: Session) -> None:
        self._recent[call_sid] = session
        self._recent.move_to_end(call_sid)
        if len(self._recent) > REMEMBERED_SESSIONS:
            self._recent.popitem(last=False)
