"""Answers to what the engine asks of the service: customer lookups, PIN checks, requests."""

from __future__ import annotations

import asyncio
from datetime import datetime

import asyncpg
import structlog

from flows.model import (
    CallState,
    CheckPin,
    CustomerLookup,
    Effect,
    EffectResult,
    FindCustomer,
    OpenRequest,
    PinChecked,
    PinVerdict,
    RequestOpened,
)
from flows.pin_lockout import PinEntry
from ivr.access.pins import PinHasher
from ivr.identifiers import ACCOUNT_NUMBER
from ivr.ops.logs import mask_phone_number
from ivr.ops.metrics import Metrics
from ivr.time_budget import POOL_ACQUIRE_S
from storage.customers import account_for_phone, customer, note_pin_check, pin_state, upgrade_pin_hash
from storage.evidence import open_request
from storage.ledger import chained

__all__ = ["EngineEffects"]

log = structlog.get_logger(__name__)


class EngineEffects:
    """Looks customers up, checks PINs against their peppered hashes, opens requests.

    How long PIN entry stays locked is worked out from the account's chained PIN checks
    (``flows.pin_lockout``); an account number no customer has is checked, counted and
    locked exactly as a real one, so neither the words nor the tries a caller gets say
    whether it exists.
    """

    def __init__(self, pool: asyncpg.Pool, pins: PinHasher, metrics: Metrics) -> None:
        self._pool = pool
        self._pins = pins
        self._metrics = metrics

    async def resolve(self, effect: Effect, state: CallState) -> EffectResult:
        if isinstance(effect, FindCustomer):
            return await self._find(effect)
        if isinstance(effect, CheckPin):
            return await self._check_pin(effect, state.call_sid)
        return await self._open_request(effect, state)

    async def _open_request(self, request: OpenRequest, state: CallState) -> RequestOpened:
        async with self._pool.acquire(timeout=POOL_ACQUIRE_S) as conn, chained(conn) as chain:
            reference = await open_request(chain, state, request.request_type, request.recording_sid)
        return RequestOpened(str(reference))

    async def _find(self, query: FindCustomer) -> CustomerLookup:
        async with self._pool.acquire(timeout=POOL_ACQUIRE_S) as conn:
            if query.phone is not None:
                return CustomerLookup(await account_for_phone(conn, query.phone))
            found = await customer(conn, query.account or "")
        return CustomerLookup(found.account_number if found else None)

    async def _check_pin(self, check: CheckPin, call_sid: str) -> PinChecked:
        if not ACCOUNT_NUMBER.match(check.account):
            # No account can have this number (everyone can know that much): the same
            # work is done, and nothing is noted, so nothing is locked.
            await asyncio.to_thread(self._pins.verify, check.pin, None)
            return PinChecked(PinVerdict.WRONG)
        async with self._pool.acquire(timeout=POOL_ACQUIRE_S) as conn, chained(conn) as chain:
            state = await pin_state(conn, check.account)
            if state.entry.locked_at(state.now):
                await note_pin_check(chain, check.account, call_sid, ok=False)  # refused, unchecked
                return _verdict(state.entry, state.now)
            found = await customer(conn, check.account)
            stored = found.pin_hash if found else None
            ok = await asyncio.to_thread(self._pins.verify, check.pin, stored)
            await note_pin_check(chain, check.account, call_sid, ok=ok)
        if ok:
            assert stored is not None
            if self._pins.needs_upgrade(stored):
                await self._upgrade(check, stored)
            return PinChecked(PinVerdict.OK)
        after = state.entry.after(state.now)
        if after.hard_locked:
            log.error(
                "ALERT_pin_hard_locked",
                account=mask_phone_number(check.account),
                call_sid=call_sid,
                in_directory=found is not None,
                wrong_pins=len(after.guesses),
            )
            self._metrics.pin_hard_locks.inc()
        return _verdict(after, state.now)

    async def _upgrade(self, check: CheckPin, stored: str) -> None:
        """A PIN hashed before the pepper, hashed again with it now that the PIN is known
        right. Best effort: the caller is identified whatever happens here, and the next
        right PIN tries again."""
        try:
            peppered = await asyncio.to_thread(self._pins.hash, check.pin)
            async with self._pool.acquire(timeout=POOL_ACQUIRE_S) as conn:
                replaced = await upgrade_pin_hash(conn, check.account, stored, peppered)
        except (asyncpg.PostgresError, OSError, TimeoutError):
            log.warning("pin_hash_not_upgraded", account=mask_phone_number(check.account), exc_info=True)
            return
        if replaced:
            log.info("pin_hash_upgraded", account=mask_phone_number(check.account))


def _verdict(entry: PinEntry, now: datetime) -> PinChecked:
    """What a wrong (or refused) PIN is answered, from the entry it leaves."""
    if entry.hard_locked:
        return PinChecked(PinVerdict.HARD_LOCKED)
    remaining = entry.remaining_s(now)
    return PinChecked(PinVerdict.LOCKED, remaining) if remaining is not None else PinChecked(PinVerdict.WRONG)
