"""Agent transfers: starting one, its news as the flow runs, and delivery to any process.

News (started, each decision, returned / return_failed / abandoned / failed) is stored
as chained ``transfer_events`` in the same transaction as the evidence it reports, and
published on a Redis channel after the commit, so an agent's live view gets it from
whichever process handled the webhook (through that process's ``TransferFeed``).

A transfer sends the caller back only to an allowed destination
(``TRANSFER_RETURN_DESTINATIONS``), and is seen only by the token that started it and
by admins: to anyone else it does not exist (``UnknownTransfer``), so ids are not confirmed.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from enum import StrEnum
from typing import Any
from uuid import UUID

import asyncpg
import structlog
from redis.asyncio import Redis

from flows.transfer_news import News
from ivr.access.roles import ADMIN
from ivr.call_control import CallControl, CallControlError
from ivr.destinations import ReturnDestinations, is_return_target
from ivr.identifiers import is_call_sid
from ivr.ops.metrics import Metrics
from ivr.time_budget import POOL_ACQUIRE_S
from ivr.transfer_feed import TRANSFER_CHANNEL, Signal, Subscription, TransferFeed
from storage.ledger import Chain, chained
from storage.postgres import Connection
from storage.tokens import Token
from storage.transfers import (
    FINAL_KINDS,
    Transfer,
    active_transfer,
    add_event,
    create_transfer,
    load_transfer,
    transfer_events,
)

__all__ = ["Refusal", "TransferDesk", "TransferRefused", "UnknownTransfer", "may_see"]

log = structlog.get_logger(__name__)


class Refusal(StrEnum):
    INVALID = "invalid"  # the request names no live call, no deployed flow or no valid target
    NOT_ALLOWED = "not_allowed"  # return_to is well formed but not an allowed destination
    ALREADY_UNDER_WAY = "already_under_way"  # the call has a transfer that has not ended
    CALL_NOT_MOVED = "call_not_moved"  # Twilio would not move the call (the cause says why)


class TransferRefused(Exception):
    """The transfer was not started; ``refusal`` says why, ``message`` tells the agent."""

    def __init__(self, refusal: Refusal, message: str) -> None:
        super().__init__(message)
        self.refusal, self.message = refusal, message


class UnknownTransfer(Exception):
    """No such transfer, or not one this token may see (the same answer, on purpose)."""

    def __init__(self) -> None:
        self.message = "no such transfer"
        super().__init__(self.message)


def may_see(token: Token, transfer: Transfer) -> bool:
    """A transfer is the business of the token that started it, and of admins."""
    return transfer.token_id == token.id or token.role == ADMIN


class TransferDesk:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: Redis,
        calls: CallControl,
        flows: set[str],
        base_url: str,
        metrics: Metrics,
        destinations: ReturnDestinations,
        feed: TransferFeed,
    ) -> None:
        self._pool, self._redis, self._calls = pool, redis, calls
        self._flows, self._base_url, self._metrics = flows, base_url.rstrip("/"), metrics
        self._destinations, self._feed = destinations, feed

    async def start(self, token: Token, call_sid: str, flow_name: str, return_to: str) -> UUID:
        """Record the transfer, then have Twilio fetch the flow for the live call."""
        if not is_call_sid(call_sid):
            raise TransferRefused(Refusal.INVALID, "call_sid must be a Twilio CallSid (CA + 32 hex digits)")
        if flow_name not in self._flows:
            raise TransferRefused(
                Refusal.INVALID, f"no flow named {flow_name!r}; deployed: {', '.join(sorted(self._flows))}"
            )
        if not is_return_target(return_to):
            raise TransferRefused(
                Refusal.INVALID, "return_to must be client:NAME, sip:URI, queue:NAME or an E.164 number"
            )
        if not self._destinations.allows(return_to):
            raise TransferRefused(
                Refusal.NOT_ALLOWED,
                f"return_to {return_to!r} is not an allowed return destination"
                f" (TRANSFER_RETURN_DESTINATIONS allows: {self._destinations})",
            )
        async with self._pool.acquire() as conn, chained(conn) as chain:
            if await active_transfer(conn, call_sid) is not None:
                raise TransferRefused(Refusal.ALREADY_UNDER_WAY, f"call {call_sid} already has a transfer under way")
            transfer_id = await create_transfer(chain, call_sid, flow_name, return_to, token.name, token.id)
        try:
            await self._calls.redirect(call_sid, f"{self._base_url}/twilio/voice?transfer={transfer_id}")
        except CallControlError as exc:
            self._metrics.twilio_rest_errors.labels(exc.failure.value).inc()
            await self.report(transfer_id, [("failed", {"reason": exc.message})])
            raise TransferRefused(Refusal.CALL_NOT_MOVED, exc.message) from exc
        return transfer_id

    async def report(self, transfer_id: UUID, news: News) -> None:
        """Store news in a transaction of its own, then publish it."""
        async with self._pool.acquire() as conn, chained(conn) as chain:
            events = await self.store(chain, transfer_id, news)
        await self.publish(transfer_id, events)

    @staticmethod
    async def store(chain: Chain, transfer_id: UUID, news: News) -> list[dict[str, Any]]:
        return [await add_event(chain, transfer_id, kind, detail) for kind, detail in news]

    async def publish(self, transfer_id: UUID, events: list[dict[str, Any]]) -> None:
        for event in events:
            await self._redis.publish(TRANSFER_CHANNEL.format(transfer_id), json.dumps(event, default=str))

    async def load(self, token: Token, transfer_id: UUID) -> tuple[Transfer, list[dict[str, Any]]]:
        """The transfer and its events so far, if ``token`` may see it (else UnknownTransfer)."""
        async with self._pool.acquire(timeout=POOL_ACQUIRE_S) as conn:
            transfer = await self._visible(conn, token, transfer_id)
            return transfer, await transfer_events(conn, transfer_id)

    @contextlib.asynccontextmanager
    async def follow(
        self, token: Token, transfer_id: UUID, listening: Callable[[], bool], heartbeat_s: float
    ) -> AsyncIterator[AsyncIterator[dict[str, Any] | None]]:
        """A stream's slot in the feed (or StreamLimitReached), and its events: past then
        live, until a final one (None: a heartbeat); they stop early if the feed ends them."""
        async with self._pool.acquire(timeout=POOL_ACQUIRE_S) as conn:
            await self._visible(conn, token, transfer_id)
        async with self._feed.subscribe(transfer_id, token.id, listening) as subscription:
            yield self._events(subscription, heartbeat_s)

    @staticmethod
    async def _visible(conn: Connection, token: Token, transfer_id: UUID) -> Transfer:
        transfer = await load_transfer(conn, transfer_id)
        if transfer is None or not may_see(token, transfer):
            raise UnknownTransfer
        return transfer

    async def _events(self, subscription: Subscription, heartbeat_s: float) -> AsyncIterator[dict[str, Any] | None]:
        seen = 0
        while True:
            delivery = await subscription.next(heartbeat_s)
            if delivery is Signal.ENDED:
                return
            if delivery is Signal.HEARTBEAT:
                yield None
                continue
            if delivery is Signal.RESYNC:
                # Subscribed before this read: whatever is published from now on is queued.
                try:
                    batch = await self._history(subscription.transfer_id)
                except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("transfer_history_unavailable", error=type(exc).__name__)
                    return  # the client reconnects and reads it then
            else:
                batch = [delivery]
            for event in batch:
                if event["id"] <= seen:
                    continue
                seen = event["id"]
                yield event
                if event["kind"] in FINAL_KINDS:
                    return

    async def _history(self, transfer_id: UUID) -> list[dict[str, Any]]:
        async with self._pool.acquire(timeout=POOL_ACQUIRE_S) as conn:
            return await transfer_events(conn, transfer_id)
