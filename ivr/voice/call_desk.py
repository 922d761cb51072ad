"""One webhook's work: load the call, step the engine, store the evidence, answer.

The order is the evidence rule (docs/architecture.md, rule 1): facts are committed to Postgres
*before* the session moves on in Redis and before the TwiML that says "recorded" is
returned. Keypresses that only move a caller through menus are kept in the call's
session and committed with the call's next evidence (its decision, a recording, a
notice) or its ending, whichever comes first, each with the time it was pressed.

If the commit fails (and a check shows the decision did not land after all), the caller
hears that nothing was recorded and the call ends; that answer is kept with the
session, under the webhook's idempotency token, and a call's committing webhooks hold its lock one at a
time, so no later copy of the webhook can record what the caller was told was not recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from typing import Any
from uuid import UUID

import asyncpg
import structlog
from redis.exceptions import RedisError

from flows import engine
from flows.model import (
    CallStart,
    CallState,
    DecisionFact,
    Event,
    Fact,
    Flow,
    KeypressFact,
    Outcome,
    Pending,
    Progress,
)
from flows.transfer_news import News, transfer_news
from ivr.flow_catalog import FlowCatalog
from ivr.ops.metrics import Metrics
from ivr.time_budget import POOL_ACQUIRE_S
from ivr.transfer_desk import TransferDesk
from ivr.voice.apology import SYSTEM_ERROR, UNKNOWN_CALL, flow_message
from ivr.voice.engine_effects import EngineEffects
from ivr.voice.twiml import TwimlRenderer
from storage.appender import Appender
from storage.deferred_endings import DeferredEndings
from storage.evidence import (
    CallEnding,
    CallRecord,
    RecordingStatus,
    call_ending_row,
    call_row,
    call_status_row,
    decision_exists,
    fact_rows,
    keypress_row,
    next_seq,
    recording_status_row,
)
from storage.ledger import EvidenceRow, chained
from storage.recordings import enqueue_fetch
from storage.sessions import CallSessions, PendingPress, Session, StepResult, Turn
from storage.transfers import FINAL_KINDS, load_transfer

__all__ = ["STORAGE_ERRORS", "CallDesk"]

log = structlog.get_logger(__name__)

# What a database outage looks like from asyncpg: refused or dropped connections,
# server errors, a connection killed mid-statement (InternalClientError), our timeouts.
STORAGE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, TimeoutError)
RECORDING_COMPLETED = "completed"  # Twilio's RecordingStatus once the media can be fetched
NEW_CALL = None  # the session a call has before its first prompt
MENU, COMMIT = "menu", "commit"  # how a step moved the call: the label of its timing
# A menu step saved without the lock may be refused once because the call moved (the
# remembered session was behind); it is then computed again from the stored session,
# and after that goes the locked way.
MOVES_BEFORE_LOCKING = 2
# Keypresses a session may hold before they are committed anyway: keeps a live call's
# Redis footprint small (under 2 KB) and bounds what a lost session could take with it.
MAX_PENDING_PRESSES = 4


class CallDesk:
    """Answers Twilio's call webhooks for every flow the catalog holds."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        sessions: CallSessions,
        flows: FlowCatalog,
        renderer: TwimlRenderer,
        effects: EngineEffects,
        transfers: TransferDesk,
        metrics: Metrics,
        appender: Appender,
        deferred: DeferredEndings,
        *,
        recording_announced: Callable[[], None],
        business_tz: tzinfo,
    ) -> None:
        self._business_tz = business_tz
        self._pool = pool
        self._appender = appender
        self._deferred = deferred
        self._metrics = metrics
        self._transfers = transfers
        self._recording_announced = recording_announced
        self._effects = effects
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
        if transfer_id is not None:
            session, answered = await self._sessions.load(call.call_sid, token)
            if answered and session is not None:
                return await self._answer_of(session)
            if session is None or session.state.transfer_id != str(transfer_id):
                return await self._start_transfer(call, token, transfer_id, session)
            return self._renderer.render(engine.replay(await self._flow_of(session.state), session.state))
        flow = self._flows.for_call(flow_name, call.dialed)
        if flow is None:
            log.error("unknown_flow_configured", flow=flow_name, call_sid=call.call_sid)
            return self.system_error()
        start = CallStart(call.call_sid, call.caller, call.dialed)
        received = datetime.now(UTC)
        try:
            outcome = await self._settle(flow, engine.start(flow, start, lang if lang in flow.languages else None))
            # Stored before anything is known of the session: a repeated request stores nothing new.
            await self._commit(
                [
                    call_row(call, flow),
                    *self._fact_rows(outcome.state, outcome.facts, token, received),
                ]
            )
        except STORAGE_ERRORS:
            log.exception("call_not_recorded", call_sid=call.call_sid)
            return self.system_error(flow)
        answer = self._renderer.render(outcome.instruction)
        result, detail = await self._sessions.step(NEW_CALL, _moved(outcome, token, answer))
        if result is StepResult.SAVED:
            log.info("call_answered", call_sid=call.call_sid, flow=flow.name, version=flow.version[:12])
            return answer
        return await self._answer_again(call.call_sid, token, detail)

    async def take_input(self, call_sid: str, event: Event, token: str) -> str:
        """The caller answered a prompt (keys or silence): move the call on.

        A step that only moves through menus is saved in one Redis round trip and its
        keypress kept in the session; a step that stores evidence (or looks something up)
        takes the call's lock, so a call's committing webhooks run one at a time.
        """
        started = time.perf_counter()
        answer, kind = await self._move_call(call_sid, event, token)
        self._metrics.call_steps.labels(kind).observe(time.perf_counter() - started)
        return answer

    async def _move_call(self, call_sid: str, event: Event, token: str) -> tuple[str, str]:
        """The answer, and how the call was moved: "menu" (without the lock) or "commit"."""
        received = datetime.now(UTC)
        session, fresh = self._sessions.recalled(call_sid), False
        if session is None:
            session, _ = await self._sessions.load(call_sid, token)
            fresh = True
        for _ in range(MOVES_BEFORE_LOCKING):
            if session is None:
                log.warning("unknown_call", call_sid=call_sid)
                return self.unknown_call(), MENU
            if token and session.token == token:  # this webhook moved the call already
                return await self._answer_of(session), MENU
            flow = await self._flow_of(session.state)
            progress = engine.advance(flow, session.state, event)
            if not isinstance(progress, Outcome) or not self._is_menu_move(flow, progress, session, fresh):
                break
            answer = self._renderer.render(progress.instruction)
            if progress.stale:  # an old prompt's webhook, checked against the stored session
                return answer, MENU
            moved = _moved(progress, token, answer, session.pending + _presses(progress, token, received))
            result, detail = await self._sessions.step(session, moved)
            if result is StepResult.SAVED:
                return answer, MENU
            if result is StepResult.BUSY:
                break
            session, fresh = detail, True  # answered before, or moved on: the loop's top tells
        return await self._take_input_in_turn(call_sid, event, token, received), COMMIT

    async def _take_input_in_turn(self, call_sid: str, event: Event, token: str, received: datetime) -> str:
        async with self._sessions.turn(call_sid, token) as turn:
            if turn.answered and turn.session is not None:
                return await self._answer_of(turn.session)
            if not turn.held:  # another delivery is stuck past Twilio's patience: say nothing is recorded
                log.error("call_lock_not_had", call_sid=call_sid)
                return self.system_error()
            if turn.session is None:
                log.warning("unknown_call", call_sid=call_sid)
                return self.unknown_call()
            return await self._commit_input(turn, event, token, received)

    async def _commit_input(self, turn: Turn, event: Event, token: str, received: datetime) -> str:
        session = turn.session
        assert session is not None
        state = session.state
        flow = await self._flow_of(state)
        outcome: Outcome | None = None
        try:
            outcome = await self._settle(flow, engine.advance(flow, state, event))
            if outcome.stale:
                log.info("stale_webhook", call_sid=state.call_sid, seq=event.seq, current=state.seq)
                return self._renderer.render(outcome.instruction)
            rows = [
                *_pending_rows(session),
                *self._fact_rows(state, outcome.facts, token, received),
            ]
            news = await self._commit(rows, state, transfer_news(flow, outcome))  # the step's one reckoning
        except STORAGE_ERRORS:
            if outcome is None or not await self._committed_anyway(state, outcome):
                log.exception("evidence_not_recorded", call_sid=state.call_sid, step=state.step)
                self._metrics.system_errors.labels("unavailable").inc()
                # Told "nothing was recorded": every later delivery must hear the same. The
                # keypresses stay in the session, to be stored with the call's ending.
                kept = session.pending + (_presses(outcome, token, received) if outcome else ())
                return await self._leave(turn, engine.abort(flow, state), token, kept)
            log.warning("commit_outcome_confirmed_after_error", call_sid=state.call_sid, step=state.step)
            news = []
        await self._publish(state, news)
        if outcome.decides:
            log.info("decision_recorded", call_sid=state.call_sid, step=state.step)
            for fact in outcome.facts:
                if isinstance(fact, DecisionFact):
                    self._metrics.decisions.labels(fact.purpose, fact.action.value, fact.channel.value).inc()
        return await self._leave(turn, outcome, token)

    async def note_call_status(self, status: CallEnding) -> None:
        """Twilio's status callback: a final status ends the call; any other is kept as it is."""
        if status.is_final:
            await self.end_call(status)
            return
        try:
            await self._commit([call_status_row(status)])
        except STORAGE_ERRORS:
            # An intermediate status decides nothing and ends nothing: noted in the log only.
            log.warning("call_status_not_stored", call_sid=status.call_sid, status=status.status)
            return
        log.info("call_status", call_sid=status.call_sid, status=status.status)

    async def end_call(self, ending: CallEnding) -> None:
        """The call is over: store the keypresses still held, and how (and where) it ended.

        Twilio reports an ending once; if it cannot be stored now it waits in Redis, with
        the call's session, for ``store_deferred_endings`` to store it later.
        """
        try:
            await self.store_ending(ending)
        except STORAGE_ERRORS:
            log.exception("call_ending_deferred", call_sid=ending.call_sid)
            await self._deferred.add(ending)

    async def store_deferred_endings(self) -> int:
        """Store the endings that waited for Postgres, oldest first; how many were stored."""
        stored = 0
        while (ending := await self._deferred.take()) is not None:
            try:
                await self.store_ending(ending)
            except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError):
                # Refused for what it is (a call this database never saw, a value no column
                # holds): retrying cannot help, and kept it would be retried forever.
                log.exception("deferred_ending_dropped", call_sid=ending.call_sid)
                continue
            except STORAGE_ERRORS:
                await self._deferred.add(ending)  # still no Postgres: try again later
                break
            stored += 1
        return stored

    async def store_ending(self, ending: CallEnding) -> None:
        session, _ = await self._sessions.load(ending.call_sid, "")
        if session is None:
            await self._commit([call_ending_row(ending, ())])
            log.info("call_ended", call_sid=ending.call_sid, status=ending.status, abandoned=False)
            return
        state = session.state
        facts = engine.hang_up(await self._flow_of(state), state)
        abandoned = [("abandoned", {"at_step": state.step})] if facts else []
        news = await self._commit([*_pending_rows(session), call_ending_row(ending, facts)], state, abandoned)
        await self._sessions.retire(ending.call_sid)
        await self._publish(state, news)
        log.info("call_ended", call_sid=ending.call_sid, status=ending.status, abandoned=bool(facts))

    async def note_recording_status(self, status: RecordingStatus) -> None:
        """Keep Twilio's word on a recording's processing (it may come before or after the call ends)."""
        async with self._pool.acquire(timeout=POOL_ACQUIRE_S) as conn, chained(conn) as chain:
            chain.add([recording_status_row(status)])
            if status.status == RECORDING_COMPLETED:
                await enqueue_fetch(conn, status.recording_sid, status.call_sid, status.account_sid)
        if status.status == RECORDING_COMPLETED:
            self._recording_announced()
        log.info("recording_status", call_sid=status.call_sid, recording=status.recording_sid, status=status.status)

    def system_error(self, flow: Flow | None = None, lang: str | None = None) -> str:
        """What a caller hears when we cannot store anything: nothing was recorded."""
        self._metrics.system_errors.labels("unavailable").inc()
        return flow_message(self._renderer, flow or self._flows.default, SYSTEM_ERROR, lang)

    def unknown_call(self) -> str:
        return flow_message(self._renderer, self._flows.default, UNKNOWN_CALL)

    @staticmethod
    def _is_menu_move(flow: Flow, outcome: Outcome, session: Session, fresh: bool) -> bool:
        """May this step be saved without the lock: nothing to commit, nothing to tell an agent?

        A stale answer is trusted only against a freshly loaded session (a remembered one
        may simply be behind). A finished call, and a session holding as many keypresses
        as it may, go through the commit path so the keypresses reach Postgres now.
        """
        if outcome.stale:
            return fresh
        return (
            not outcome.state.finished
            and all(isinstance(fact, KeypressFact) for fact in outcome.facts)
            and len(session.pending) + len(outcome.facts) <= MAX_PENDING_PRESSES
            and not transfer_news(flow, outcome)
        )

    async def _committed_anyway(self, state: CallState, outcome: Outcome) -> bool:
        """After an error around a commit, did the decision land all the same? (Then it is true.)"""
        decision = next((f for f in outcome.facts if isinstance(f, DecisionFact)), None)
        if decision is None:
            return False
        try:
            async with self._pool.acquire(timeout=POOL_ACQUIRE_S) as conn:
                return await decision_exists(conn, state.call_sid, decision.seq)
        except STORAGE_ERRORS:
            return False

    async def _start_transfer(self, call: CallRecord, token: str, transfer_id: UUID, session: Session | None) -> str:
        """An agent moved this live call into a flow: start it, numbering on from the call so far."""
        async with self._pool.acquire(timeout=POOL_ACQUIRE_S) as conn:
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
            first_seq=max(first_seq, session.state.seq + 1 if session else 0),
        )
        received = datetime.now(UTC)
        try:
            outcome = await self._settle(flow, engine.start(flow, start))
            # The keypresses of the call so far belong to its earlier flow: stored under it.
            earlier = _pending_rows(session) if session else []
            rows = [
                *earlier,
                call_row(call, flow),
                *self._fact_rows(outcome.state, outcome.facts, token, received),
            ]
            started = [("started", {"flow": flow.name, "flow_version": flow.version})]
            news = await self._commit(rows, outcome.state, started)
        except STORAGE_ERRORS:
            log.exception("transfer_not_recorded", call_sid=call.call_sid)
            return self.system_error(flow)
        await self._publish(outcome.state, news)
        log.info("transfer_started", call_sid=call.call_sid, transfer=str(transfer_id), flow=flow.name)
        answer = self._renderer.render(outcome.instruction)
        if await self._save(_moved(outcome, token, answer), expected=session or NEW_CALL):
            return answer
        return await self._answer_again(call.call_sid, token, None)

    async def _commit(
        self,
        rows: list[EvidenceRow],
        state: CallState | None = None,
        news: News | None = None,
    ) -> list[dict[str, Any]]:
        """Store and chain ``rows``, with an agent's news if a transfer watches (then in a transaction
        of their own, as the news rows' ids are needed); otherwise with other calls' evidence."""
        if news and state is not None and state.transfer_id is not None:
            async with self._pool.acquire(timeout=POOL_ACQUIRE_S) as conn, chained(conn) as chain:
                chain.add(rows)
                return await self._transfers.store(chain, UUID(state.transfer_id), news)
        if rows:
            await self._appender.append(rows)
        return []

    async def _publish(self, state: CallState, events: list[dict[str, Any]]) -> None:
        """Tell a watching agent; the events are already stored, so a Redis failure only delays them."""
        if events and state.transfer_id is not None:
            try:
                await self._transfers.publish(UUID(state.transfer_id), events)
            except RedisError:
                log.exception("transfer_news_not_published", call_sid=state.call_sid)

    async def _settle(self, flow: Flow, progress: Progress) -> Outcome:
        """Answer whatever the engine asks (lookups, PIN checks) until it knows what to say."""
        facts: tuple[Fact, ...] = ()
        while isinstance(progress, Pending):
            facts += progress.facts
            result = await self._effects.resolve(progress.effect, progress.state)
            progress = engine.resume(flow, progress, result)
        return replace(progress, facts=facts + progress.facts) if facts else progress

    async def _leave(self, turn: Turn, outcome: Outcome, token: str, pending: tuple[PendingPress, ...] = ()) -> str:
        """Save the call where the committed step left it, and let go of its lock."""
        answer = self._renderer.render(outcome.instruction)
        if await self._save(_moved(outcome, token, answer, pending), expected=turn.session, turn=turn):
            return answer
        return await self._answer_again(outcome.state.call_sid, token, None)

    async def _save(self, moved: Session, *, expected: Session | None, turn: Turn | None = None) -> bool:
        try:
            return await self._sessions.save(moved, expected=expected, turn=turn)
        except RedisError:
            # The evidence is already committed, so the answer is true; the call's next
            # webhook will meet the session where it was (or Redis down) and say so.
            log.exception("session_not_saved", call_sid=moved.state.call_sid)
            return True

    async def _answer_of(self, session: Session) -> str:
        """What the webhook that moved the call last was told."""
        if session.answer is not None:
            return session.answer
        return self._renderer.render(engine.replay(await self._flow_of(session.state), session.state))

    async def _answer_again(self, call_sid: str, token: str, session: Session | None) -> str:
        """Another webhook moved this call first: repeat this webhook's answer, or say where the call is."""
        if session is None:
            session, _ = await self._sessions.load(call_sid, token)
        if session is None:
            return self.unknown_call()
        if token and session.token == token:
            return await self._answer_of(session)
        return self._renderer.render(engine.replay(await self._flow_of(session.state), session.state))

    def _fact_rows(self, state: CallState, facts: tuple[Fact, ...], token: str, at: datetime) -> list[EvidenceRow]:
        return fact_rows(state, facts, token, at, business_tz=self._business_tz)

    async def _flow_of(self, state: CallState) -> Flow:
        return await self._flows.version(state.flow_version, self._pool)


def _moved(outcome: Outcome, token: str, answer: str, pending: tuple[PendingPress, ...] = ()) -> Session:
    """The session after ``outcome``; the answer is kept only if the state cannot replay it."""
    return Session(outcome.state, pending, token, answer if outcome.keep_answer else None)


def _presses(outcome: Outcome, token: str, received: datetime) -> tuple[PendingPress, ...]:
    at = received.isoformat()
    return tuple(PendingPress(fact, token, at) for fact in outcome.facts if isinstance(fact, KeypressFact))


def _pending_rows(session: Session) -> list[EvidenceRow]:
    return [
        keypress_row(session.state, press.fact, press.token, datetime.fromisoformat(press.received_at))
        for press in session.pending
    ]
