"""Agent transfers: starting one, its news as the flow runs, and delivery to any process.

News (started, each decision, returned / return_failed / abandoned / failed) is stored
as chained ``transfer_events`` in the same transaction as the evidence it reports, and
published on a Redis channel after the commit, so an agent's live view gets it from
whichever process handled the webhook.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import asyncpg
from redis.asyncio import Redis

from flows.model import Connect, ConnectFact, DecisionFact, Flow, Outcome, ReturnStep
from ivr.call_control import CallControl, CallControlError
from ivr.metrics import Metrics
from storage.ledger import Chain, chained
from storage.tokens import Token
from storage.transfers import FINAL_KINDS, active_transfer, add_event, create_transfer, transfer_events

__all__ = ["TRANSFER_CHANNEL", "TransferDesk", "TransferRefused", "transfer_news"]

TRANSFER_CHANNEL = "ivr:transfer:{}"
_RETURN_TO = re.compile(r"^(queue:[A-Za-z0-9_-]{1,64}|client:[A-Za-z0-9_.-]{1,128}|sip:\S{3,256}|\+[1-9]\d{6,14})$")
_CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")


class TransferRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def transfer_news(flow: Flow, outcome: Outcome) -> list[tuple[str, dict[str, Any]]]:
    """What an agent watching this transfer should hear about one step of the call."""
    state, news = outcome.state, []
    for fact in outcome.facts:
        if isinstance(fact, DecisionFact):
            detail = {
                "purpose": fact.purpose,
                "action": fact.action.value,
                "scope": fact.scope,
                "subject": fact.subject,
            }
            news.append(("decision", detail))
        elif isinstance(fact, ConnectFact) and isinstance(flow.steps.get(fact.step), ReturnStep):
            kind = "returned" if fact.connected else "return_failed"
            news.append((kind, {"to": state.return_to, "status": fact.status}))
    if isinstance(outcome.instruction, Connect) and isinstance(flow.steps.get(state.step), ReturnStep):
        news.append(("returning", {"to": state.return_to}))
    return news


class TransferDesk:
    def __init__(
        self, pool: asyncpg.Pool, redis: Redis, calls: CallControl, flows: set[str], base_url: str, metrics: Metrics
    ) -> None:
        self._pool, self._redis, self._calls = pool, redis, calls
        self._flows, self._base_url, self._metrics = flows, base_url.rstrip("/"), metrics

    async def start(self, token: Token, call_sid: str, flow_name: str, return_to: str) -> UUID:
        """Record the transfer, then have Twilio fetch the flow for the live call."""
        if not _CALL_SID.match(call_sid):
            raise TransferRefused(422, "call_sid must be a Twilio CallSid (CA + 32 hex digits)")
        if flow_name not in self._flows:
            raise TransferRefused(422, f"no flow named {flow_name!r}; deployed: {', '.join(sorted(self._flows))}")
        if not _RETURN_TO.match(return_to):
            raise TransferRefused(422, "return_to must be client:NAME, sip:URI, queue:NAME or an E.164 number")
        async with self._pool.acquire() as conn, chained(conn) as chain:
            if await active_transfer(conn, call_sid) is not None:
                raise TransferRefused(409, f"call {call_sid} already has a transfer under way")
            transfer_id = await create_transfer(chain, call_sid, flow_name, return_to, token.name, token.id)
        try:
            await self._calls.redirect(call_sid, f"{self._base_url}/twilio/voice?transfer={transfer_id}")
        except CallControlError as exc:
            self._metrics.twilio_rest_errors.labels(str(exc.status)).inc()
            await self.report(transfer_id, [("failed", {"reason": exc.message})])
            raise TransferRefused(exc.status, exc.message) from exc
        return transfer_id

    async def report(self, transfer_id: UUID, news: list[tuple[str, dict[str, Any]]]) -> None:
        """Store news in a transaction of its own, then publish it."""
        async with self._pool.acquire() as conn, chained(conn) as chain:
            events = await self.store(chain, transfer_id, news)
        await self.publish(transfer_id, events)

    @staticmethod
    async def store(chain: Chain, transfer_id: UUID, news: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        return [await add_event(chain, transfer_id, kind, detail) for kind, detail in news]

    async def publish(self, transfer_id: UUID, events: list[dict[str, Any]]) -> None:
        for event in events:
            await self._redis.publish(TRANSFER_CHANNEL.format(transfer_id), json.dumps(event, default=str))

    async def follow(self, transfer_id: UUID, heartbeat_s: float) -> AsyncIterator[dict[str, Any] | None]:
        """Every event of the transfer, past then live, until a final one (None: a heartbeat)."""
        async with self._redis.pubsub() as pubsub:
            await pubsub.subscribe(TRANSFER_CHANNEL.format(transfer_id))  # before reading history: none lost
            async with self._pool.acquire() as conn:
                past = await transfer_events(conn, transfer_id)
            seen = 0
            for event in past:
                seen = max(seen, event["id"])
                yield event
                if event["kind"] in FINAL_KINDS:
                    return
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=heartbeat_s)
                if message is None:
                    yield None
                    continue
                event = json.loads(message["data"])
                if event["id"] <= seen:
                    continue
                seen = event["id"]
                yield event
                if event["kind"] in FINAL_KINDS:
                    return
