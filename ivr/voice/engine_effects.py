"""Answers to what the engine asks of the service: customer lookups, PIN checks, requests."""

from __future__ import annotations

import asyncio

import asyncpg

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
from ivr.access.passwords import verify_secret
from ivr.time_budget import POOL_ACQUIRE_S
from storage.customers import account_for_phone, customer, note_pin_check, recent_pin_failures
from storage.evidence import open_request
from storage.ledger import chained

__all__ = ["MAX_PIN_FAILURES", "PIN_LOCKOUT_S", "EngineEffects"]

# Five wrong PINs lock PIN entry on the account, across calls, for fifteen minutes:
# a caller who mistypes can still succeed; a guesser gets 5 tries per quarter hour.
MAX_PIN_FAILURES = 5
PIN_LOCKOUT_S = 15 * 60


class EngineEffects:
    """Looks customers up, checks PINs against their salted hashes, opens requests."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

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
        async with self._pool.acquire(timeout=POOL_ACQUIRE_S) as conn, chained(conn) as chain:
            failures = await recent_pin_failures(conn, check.account, PIN_LOCKOUT_S)
            if failures >= MAX_PIN_FAILURES:
                await note_pin_check(chain, check.account, call_sid, ok=False)
                return PinChecked(PinVerdict.LOCKED, PIN_LOCKOUT_S)
            found = await customer(conn, check.account)
            stored = found.pin_hash if found else None
            ok = stored is not None and await asyncio.to_thread(verify_secret, check.pin, stored)
            await note_pin_check(chain, check.account, call_sid, ok=ok)
        if ok:
            return PinChecked(PinVerdict.OK)
        if failures + 1 >= MAX_PIN_FAILURES:
            return PinChecked(PinVerdict.LOCKED, PIN_LOCKOUT_S)
        return PinChecked(PinVerdict.WRONG)
