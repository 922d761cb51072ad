"""One webhook's work: load the call, step the engine, store the evidence, answer.

The order is the evidence rule (DESIGN rule 1): facts are committed to Postgres
*before* the session moves on in Redis and before the TwiML that says "recorded" is
returned. If the commit fails (and a check shows the decision did not land after all),
the caller hears that nothing was recorded and the call ends; that answer is kept under
the webhook's idempotency token, and a call's webhooks are handled one at a time, so
no later copy of the webhook can record what the caller was told was not recorded.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any
from uuid import UUID

import asyncpg
import structlog
from redis.exceptions import RedisError

from flows import engine
from flows.model import CallStart, CallState, DecisionFact, End, Event, Fact, Flow, Outcome, Pending, Progress
from ivr.flow_catalog import FlowCatalog
from ivr.lookups import Lookups
from ivr.metrics import Metrics
from ivr.transfers import TransferDesk, transfer_news
from ivr.twiml import TwimlRenderer
from storage.evidence import (
    CallEnding,
    CallRecord,
    RecordingStatus,
    decision_exists,
    next_seq,
    record_call,
    record_call_ending,
    record_facts,
    record_recording_status,
)
from storage.ledger import Chain, chained
from storage.recordings import enqueue_fetch
from storage.sessions import CallSessions
from storage.transfers import FINAL_KINDS, load_transfer

__all__ = ["STORAGE_ERRORS", "CallDesk"]

log = structlog.get_logger(__name__)

# What a database outage looks like from asyncpg: refused or dropped connections,
# server errors, a connection killed mid-statement (InternalClientError), our timeouts.
STORAGE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, TimeoutError)
RECORDING_COMPLETED = "completed"  # Twilio's RecordingStatus once the media can be fetched
# Waiting longer than this for a pooled connection would eat Twilio's 15-second budget.
POOL_ACQUIRE_TIMEOUT_S = 4.0


class CallDesk:
    """Answers Twilio's call webhooks for every flow the catalog holds."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        sessions: CallSessions,
        flows: FlowCatalog,
        renderer: TwimlRenderer,
        recording_announced: Callable[[], None] = lambda: None,
        transfers: TransferDesk | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._pool = pool
        self._metrics = metrics or Metrics()
        self._transfers = transfers
        self._recording_announced = recording_announced
        self._lookups = Lookups(pool)
        self._sessions = sessions
        self._flows = flows
        self._renderer = renderer

    async def answer_call(
        self,
        call: CallRecord,
        token: str,
        *,
        flow_name: str | None = None,
        lang: str | None = None,
        transfer_id: UUID | None = None,
    ) -> str:
        """A call comes in: open its session and play the flow's first prompt.

        ``flow_name`` and ``lang`` come from the webhook URL configured on the number
        (``/twilio/voice?flow=…&lang=…``); without a flow name, the dialed number's flow
        (``IVR_NUMBER_FLOWS``) or the default flow answers, in its default language
        unless ``lang`` says otherwise.
        """
        state, answered = await self._sessions.load(call.call_sid, token)
        if answered is not None:
            return answered
        if transfer_id is not None and (state is None or state.transfer_id != str(transfer_id)):
            return await self._start_transfer(call, token, transfer_id, state)
        if state is not None:  # Twilio asked again for a call already under way
            return self._renderer.render(engine.replay(await self._flow_of(state), state))
        flow = self._flows.for_call(flow_name, call.dialed)
        if flow is None:
            log.error("unknown_flow_configured", flow=flow_name, call_sid=call.call_sid)
            return self.system_error()
        start = CallStart(call.call_sid, call.caller, call.dialed)
        try:
            async with self._transaction() as chain:
                await record_call(chain, call, flow)
            outcome = await self._settle(flow, engine.start(flow, start, lang if lang in flow.languages else None))
            if outcome.facts:
                async with self._transaction() as chain:
                    await record_facts(chain, outcome.state, outcome.facts, token)
        except STORAGE_ERRORS:
            log.exception("call_not_recorded", call_sid=call.call_sid)
            return self.system_error(flow)
        log.info("call_answered", call_sid=call.call_sid, flow=flow.name, version=flow.version[:12])
        return await self._move(outcome, expected_seq=None, token=token)

    async def take_input(self, call_sid: str, event: Event, token: str) -> str:
        """The caller answered a prompt (keys or silence): move the call on, one webhook at a time."""
        async with self._sessions.exclusive(call_sid) as held:
            if not held:  # another delivery is stuck past Twilio's patience: say nothing is recorded
                log.error("call_lock_not_had", call_sid=call_sid)
                return self.system_error()
            return await self._take_input(call_sid, event, token)

    async def _take_input(self, call_sid: str, event: Event, token: str) -> str:
        state, answered = await self._sessions.load(call_sid, token)
        if answered is not None:
            return answered
        if state is None:
            log.warning("unknown_call", call_sid=call_sid)
            return self.unknown_call()
        flow = await self._flow_of(state)
        outcome: Outcome | None = None
        try:
            outcome = await self._settle(flow, engine.advance(flow, state, event))
            if outcome.stale:
                log.info("stale_webhook", call_sid=call_sid, seq=event.seq, current=state.seq)
                return self._renderer.render(outcome.instruction)
            async with self._transaction() as chain:
                await record_facts(chain, state, outcome.facts, token)
                news = await self._store_news(chain, state, transfer_news(flow, outcome))
        except STORAGE_ERRORS:
            if outcome is None or not await self._committed_anyway(state, outcome):
                log.exception("evidence_not_recorded", call_sid=call_sid, step=state.step)
                self._metrics.system_errors.labels("unavailable").inc()
                # Told "nothing was recorded": every later delivery must hear the same.
                return await self._move(engine.abort(flow, state), expected_seq=state.seq, token=token)
            log.warning("commit_outcome_confirmed_after_error", call_sid=call_sid, step=state.step)
            news = []
        await self._publish(state, news)
        if outcome.decides:
            log.info("decision_recorded", call_sid=call_sid, step=state.step)
            for fact in outcome.facts:
                if isinstance(fact, DecisionFact):
                    self._metrics.decisions.labels(fact.purpose, fact.action.value, fact.channel.value).inc()
        return await self._move(outcome, expected_seq=state.seq, token=token)

    async def end_call(self, ending: CallEnding) -> None:
        """The call is over: note how it ended, and where, if it was abandoned."""
        state, _ = await self._sessions.load(ending.call_sid, "")
        facts = engine.hang_up(await self._flow_of(state), state) if state is not None else ()
        abandoned = [("abandoned", {"at_step": state.step})] if state is not None and facts else []
        async with self._transaction() as chain:
            await record_call_ending(chain, ending, facts)
            news = await self._store_news(chain, state, abandoned) if state is not None else []
        if state is not None:
            await self._publish(state, news)
        log.info("call_ended", call_sid=ending.call_sid, status=ending.status, abandoned=bool(facts))

    async def note_recording_status(self, status: RecordingStatus) -> None:
        """Keep Twilio's word on a recording's processing (it may come before or after the call ends)."""
        async with self._transaction() as chain:
            await record_recording_status(chain, status)
            if status.status == RECORDING_COMPLETED:
                await enqueue_fetch(chain.conn, status.recording_sid, status.call_sid, status.account_sid)
        if status.status == RECORDING_COMPLETED:
            self._recording_announced()
        log.info("recording_status", call_sid=status.call_sid, recording=status.recording_sid, status=status.status)

    def system_error(self, flow: Flow | None = None, lang: str | None = None) -> str:
        """What a caller hears when we cannot store anything: nothing was recorded."""
        self._metrics.system_errors.labels("unavailable").inc()
        return self._message(flow or self._flows.default, "system_error", lang)

    def unknown_call(self) -> str:
        return self._message(self._flows.default, "unknown_call", None)

    async def _committed_anyway(self, state: CallState, outcome: Outcome) -> bool:
        """After an error around a commit, did the decision land all the same? (Then it is true.)"""
        decision = next((f for f in outcome.facts if isinstance(f, DecisionFact)), None)
        if decision is None:
            return False
        try:
            async with self._pool.acquire(timeout=POOL_ACQUIRE_TIMEOUT_S) as conn:
                return await decision_exists(conn, state.call_sid, decision.seq)
        except STORAGE_ERRORS:
            return False

    async def _start_transfer(self, call: CallRecord, token: str, transfer_id: UUID, state: CallState | None) -> str:
        """An agent moved this live call into a flow: start it, numbering on from the call so far."""
        async with self._pool.acquire() as conn:
            transfer = await load_transfer(conn, transfer_id)
            first_seq = await next_seq(conn, call.call_sid)
        flow = self._flows.named(transfer.flow_name) if transfer else None
        if transfer is None or transfer.call_sid != call.call_sid or transfer.status in FINAL_KINDS or flow is None:
            log.error("transfer_not_startable", call_sid=call.call_sid, transfer=str(transfer_id))
            return self.system_error()
        start = CallStart(
            call.call_sid,
            call.caller,
            call.dialed,
            agent=transfer.agent,
            return_to=transfer.return_to,
            transfer_id=str(transfer_id),
            first_seq=max(first_seq, state.seq + 1 if state else 0),
        )
        try:
            outcome = await self._settle(flow, engine.start(flow, start))
            async with self._transaction() as chain:
                await record_call(chain, call, flow)
                await record_facts(chain, outcome.state, outcome.facts, token)
                started = [("started", {"flow": flow.name, "flow_version": flow.version})]
                news = await self._store_news(chain, outcome.state, started)
        except STORAGE_ERRORS:
            log.exception("transfer_not_recorded", call_sid=call.call_sid)
            return self.system_error(flow)
        await self._publish(outcome.state, news)
        log.info("transfer_started", call_sid=call.call_sid, transfer=str(transfer_id), flow=flow.name)
        return await self._move(outcome, expected_seq=state.seq if state else None, token=token)

    async def _store_news(
        self, chain: Chain, state: CallState, news: list[tuple[str, dict[str, Any]]]
    ) -> list[dict[str, Any]]:
        if state.transfer_id is None or not news or self._transfers is None:
            return []
        return await self._transfers.store(chain, UUID(state.transfer_id), news)

    async def _publish(self, state: CallState, events: list[dict[str, Any]]) -> None:
        """Tell a watching agent; the events are already stored, so a Redis failure only delays them."""
        if events and state.transfer_id is not None and self._transfers is not None:
            try:
                await self._transfers.publish(UUID(state.transfer_id), events)
            except RedisError:
                log.exception("transfer_news_not_published", call_sid=state.call_sid)

    async def _settle(self, flow: Flow, progress: Progress) -> Outcome:
        """Answer whatever the engine asks (lookups, PIN checks) until it knows what to say."""
        facts: tuple[Fact, ...] = ()
        while isinstance(progress, Pending):
            facts += progress.facts
            result = await self._lookups.resolve(progress.effect, progress.state)
            progress = engine.resume(flow, progress, result)
        return replace(progress, facts=facts + progress.facts) if facts else progress

    async def _move(self, outcome: Outcome, *, expected_seq: int | None, token: str) -> str:
        answer = self._renderer.render(outcome.instruction)
        try:
            saved = await self._sessions.save(outcome.state, expected_seq=expected_seq, token=token, answer=answer)
        except RedisError:
            # The evidence is already committed, so the answer is true; the call's next
            # webhook will meet the session where it was (or Redis down) and say so.
            log.exception("session_not_saved", call_sid=outcome.state.call_sid)
            return answer
        if saved:
            return answer
        # Another delivery of a webhook for this call moved it first. The answer it
        # stored under this token is the one to repeat; otherwise say where the call is.
        state, answered = await self._sessions.load(outcome.state.call_sid, token)
        if answered is not None:
            return answered
        if state is None:
            return self.unknown_call()
        return self._renderer.render(engine.replay(await self._flow_of(state), state))

    async def _flow_of(self, state: CallState) -> Flow:
        return await self._flows.version(state.flow_version, self._pool)

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Chain]:
        """One transaction of evidence, chained into the ledger as it commits."""
        async with self._pool.acquire(timeout=POOL_ACQUIRE_TIMEOUT_S) as conn, chained(conn) as chain:
            yield chain

    def _message(self, flow: Flow, key: str, lang: str | None) -> str:
        lang = lang or flow.default_language
        text = flow.messages[key].text(lang)
        return self._renderer.render(End(speech=(text,), language=flow.languages[lang]))
