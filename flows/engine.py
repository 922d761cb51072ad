"""The flow engine: state + event in, next state + what to say + evidence facts out.

Pure and synchronous. It never touches the network, a database or TwiML; callers
persist the facts and render the instruction. Which key leads where is read from the
flow definition, never decided here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

from flows.callers import is_withheld, keyed_number
from flows.model import (
    AbandonFact,
    Ask,
    CallStart,
    CallState,
    Channel,
    CheckPin,
    Choice,
    CollectStep,
    ConfirmStep,
    Connect,
    ConnectEnded,
    ConnectFact,
    CustomerLookup,
    DecideStep,
    Decision,
    DecisionFact,
    Digits,
    EffectResult,
    End,
    Event,
    Fact,
    FindCustomer,
    Flow,
    GoodbyeStep,
    Identification,
    IdentifyStep,
    Instruction,
    KeypressFact,
    KeypressOutcome,
    MenuStep,
    NoInput,
    NoticeFact,
    NumberStep,
    OpenRequest,
    Outcome,
    Pending,
    PinChecked,
    PinVerdict,
    Progress,
    Prompt,
    Record,
    Recorded,
    RecordingFact,
    RecordStep,
    RequestOpened,
    RequestStep,
    ReturnStep,
    SayStep,
    Step,
    SubjectKind,
    TransferStep,
    WaitingStep,
)

__all__ = ["FlowError", "abort", "advance", "hang_up", "replay", "resume", "start"]

# A flow that chains more non-waiting steps than this is broken (a say/decide loop);
# the loader rejects such cycles, this only stops a bad definition from spinning.
MAX_CHAINED_STEPS = 32
SINGLE_KEY = 1


class FlowError(Exception):
    """The definition cannot handle this state: a bug in the flow, never caller input."""

    def __init__(self, flow: str, step: str, problem: str) -> None:
        super().__init__(f"flow {flow!r} step {step!r}: {problem}")
        self.flow, self.step, self.problem = flow, step, problem


def start(flow: Flow, call: CallStart, lang: str | None = None) -> Progress:
    """Answer a new call: chain from the flow's first step to its first question."""
    state = CallState(
        call_sid=call.call_sid,
        caller=call.caller,
        dialed=call.dialed,
        flow_name=flow.name,
        flow_version=flow.version,
        lang=lang or flow.default_language,
        step=flow.start,
        seq=call.first_seq,
        agent=call.agent,
        return_to=call.return_to,
        transfer_id=call.transfer_id,
    )
    return _enter(flow, state, flow.start)


def advance(flow: Flow, state: CallState, event: Event) -> Progress:
    """Apply the caller's answer to the prompt now playing.

    An event answering an earlier prompt (a retried or out-of-order webhook) leaves
    the call where it is and replays what the caller is hearing now.
    """
    if state.finished or event.seq != state.seq:
        return Outcome(state, replay(flow, state), stale=True)
    step = flow.steps[state.step]
    answer = _ANSWERS.get(step.kind)
    if answer is None:
        raise FlowError(flow.name, step.id, f"a {step.kind} step does not wait for input")
    settled, heard = _notice_settled(flow, state)
    progress = answer(flow, settled, step, event)
    if isinstance(progress, Outcome) and progress.stale:  # a misrouted webhook proves nothing
        return Outcome(state, replay(flow, state), stale=True)
    return replace(progress, facts=heard + progress.facts) if heard else progress


def _notice_settled(flow: Flow, state: CallState) -> tuple[CallState, tuple[Fact, ...]]:
    """The call answered the prompt a notice was part of: the notice played to its end.

    A notice plays before the caller can answer (it is not barged in on), so any answer
    to its prompt — keys, silence, a recording — proves it was heard whole; a caller who
    hangs up during it sends none, and the notice is not counted as given.
    """
    if state.notice_playing is None:
        return (replace(state, fixed=0) if state.fixed else state), ()
    step = flow.steps[state.notice_playing]
    assert isinstance(step, SayStep) and step.notice is not None
    fact = NoticeFact(state.seq, step.id, step.notice, state.spoken[state.fixed - 1], state.lang)
    heard = state.notices_heard + ((step.notice,) if step.notice not in state.notices_heard else ())
    return replace(state, fixed=0, notice_playing=None, notices_heard=heard), (fact,)


def resume(flow: Flow, pending: Pending, result: EffectResult) -> Progress:
    """Carry on after the service answered what ``pending`` asked (a lookup, a PIN check)."""
    step = flow.steps[pending.state.step]
    if isinstance(step, RequestStep) and isinstance(result, RequestOpened):
        return _request_opened(flow, pending, step, result)
    if isinstance(step, IdentifyStep) and isinstance(result, CustomerLookup):
        return _customer_found(flow, pending, step, result)
    if isinstance(step, IdentifyStep) and isinstance(result, PinChecked):
        return _pin_checked(flow, pending, step, result)
    raise FlowError(flow.name, step.id, f"nothing here was waiting for {type(result).__name__}")


def replay(flow: Flow, state: CallState) -> Instruction:
    """What the caller is hearing now, rebuilt word for word from the state."""
    language = flow.languages[state.lang]
    if state.finished:
        return End(speech=state.spoken, language=language)
    return _ask(flow, state, state.spoken)


def abort(flow: Flow, state: CallState, message: str = "system_error") -> Outcome:
    """End the call with a flow message (nothing was recorded): the answer every later
    delivery of this webhook must get too, so a retry can never record what the caller
    was told was not recorded."""
    failed = replace(state, seq=state.seq + 1)
    return _finish(flow, failed, (_say(flow, failed, flow.messages[message]),), ())


def hang_up(flow: Flow, state: CallState) -> tuple[Fact, ...]:
    """The call ended: a call that had not reached its end was abandoned where it stood."""
    if state.finished:
        return ()
    return (AbandonFact(step=state.step),)


# --- answering a waiting step ----------------------------------------------------------

REPEAT_KEY = "*"
OPERATOR_KEY = "0"
EXPRESS_PREFIX = "*"


def _answer_menu(flow: Flow, state: CallState, step: Step, event: Event) -> Progress:
    assert isinstance(step, MenuStep)
    if isinstance(event, NoInput):
        return _retry(flow, state, step, event, KeypressOutcome.NO_INPUT)
    if not isinstance(event, Digits):
        return _unexpected(flow, state)
    keys = event.digits
    if step.express is not None and keys.startswith(EXPRESS_PREFIX):
        return _express(flow, state, step, event)
    choice = step.choices.get(keys)
    if choice is None and keys == OPERATOR_KEY and flow.operator is not None:
        choice = Choice(next=flow.operator)
    if choice is None and keys == REPEAT_KEY:
        return _repeat(flow, state, step, event)
    if choice is None:
        return _retry(flow, state, step, event, KeypressOutcome.INVALID)
    fresh = choice.purpose is not None or choice.request is not None
    return _follow(flow, state, step, event, choice, Channel.KEYPAD, fresh_trail=fresh)


def _express(flow: Flow, state: CallState, step: MenuStep, event: Digits) -> Progress:
    """``*`` at a menu: a dialing string, whole (``*12``) or to be read next (``*``)."""
    assert step.express is not None
    collect = flow.steps[step.express]
    assert isinstance(collect, CollectStep)
    code = event.digits[len(EXPRESS_PREFIX) :]
    if not code:
        moved = replace(_accepted(state, event), trail=(_typed(event),), channel=Channel.DIALING_STRING)
        return _enter(flow, moved, collect.id, facts=(_keypress(state, event, KeypressOutcome.VALID),))
    choice = _code_choice(collect, code)
    if choice is None:
        return _retry(flow, state, step, event, KeypressOutcome.INVALID)
    return _follow(flow, state, collect, event, choice, Channel.DIALING_STRING, fresh_trail=True)


def _answer_collect(flow: Flow, state: CallState, step: Step, event: Event) -> Progress:
    assert isinstance(step, CollectStep)
    if isinstance(event, NoInput):
        return _retry(flow, state, step, event, KeypressOutcome.NO_INPUT)
    if not isinstance(event, Digits):
        return _unexpected(flow, state)
    choice = _code_choice(step, event.digits)
    if choice is None:
        return _retry(flow, state, step, event, KeypressOutcome.INVALID)
    return _follow(flow, state, step, event, choice, state.channel, fresh_trail=False)


def _code_choice(step: CollectStep, code: str) -> Choice | None:
    if not step.min_length <= len(code) <= step.max_length:
        return None
    return step.codes.get(code)


def _answer_confirm(flow: Flow, state: CallState, step: Step, event: Event) -> Progress:
    assert isinstance(step, ConfirmStep)
    if isinstance(event, NoInput):
        return _retry(flow, state, step, event, KeypressOutcome.NO_INPUT)
    if not isinstance(event, Digits):
        return _unexpected(flow, state)
    targets = {step.confirm_key: step.yes, step.back_key: state.chosen_at}
    target = targets.get(event.digits)
    if target is None:
        return _retry(flow, state, step, event, KeypressOutcome.INVALID)
    moved = _accepted(state, event)
    if event.digits == step.back_key:
        moved = replace(moved, action=None)
    return _enter(flow, moved, target, facts=(_keypress(state, event, KeypressOutcome.VALID),))


def _answer_record(flow: Flow, state: CallState, step: Step, event: Event) -> Progress:
    """A statement was recorded (or nothing was said): keep it, then go on."""
    assert isinstance(step, RecordStep)
    if isinstance(event, NoInput) and step.optional:
        skipped = replace(state, seq=state.seq + 1, attempts=0)
        return _enter(flow, skipped, step.next, facts=(_keypress(state, event, KeypressOutcome.NO_INPUT),))
    if isinstance(event, NoInput):
        return _retry(flow, state, step, event, KeypressOutcome.NO_INPUT)
    if not isinstance(event, Recorded):
        return _unexpected(flow, state)
    fact = RecordingFact(
        seq=state.seq,
        step=step.id,
        recording_sid=event.recording_sid,
        recording_url=event.recording_url,
        duration_s=event.duration_s,
        ended_by=event.ended_by,
        heard=state.heard,
        lang=state.lang,
    )
    if event.ended_by == HUNG_UP and state.request_type is not None and isinstance(flow.steps[step.next], RequestStep):
        # Hanging up is how a caller naturally ends a description: the request is opened
        # with the recording, and the call ends there.
        moved = replace(state, seq=state.seq + 1, attempts=0, step=step.next, recording_sid=event.recording_sid)
        return Pending(moved, OpenRequest(state.request_type, event.recording_sid), (fact,))
    if event.ended_by == HUNG_UP:
        # The caller left mid-statement: the recording is kept, nothing follows from it,
        # and the call stays at this step, so its ending is marked abandoned here.
        moved = replace(state, seq=state.seq + 1)
        return Outcome(moved, End((), flow.languages[state.lang]), (fact,), keep_answer=True)
    if event.duration_s < step.min_length_s:
        kept = _retry(flow, state, step, NoInput(event.seq), KeypressOutcome.NO_INPUT)
        return replace(kept, facts=(fact,) + kept.facts) if isinstance(kept, Outcome) else kept
    moved = replace(
        state,
        seq=state.seq + 1,
        attempts=0,
        channel=Channel.VERBAL,
        recording_sid=event.recording_sid,
        trail=state.trail + (f"[recording {event.recording_sid}]",),
    )
    return _enter(flow, moved, step.next, facts=(fact,))


HUNG_UP = "hangup"  # how Twilio reports a <Record> ended by the caller hanging up


# Dial and queue results after which the caller was (or no longer needs to be) connected.
CONNECTED_STATUSES = frozenset({"completed", "answered", "bridged", "hangup", "redirected"})


def _answer_connect(flow: Flow, state: CallState, step: Step, event: Event) -> Progress:
    """The transfer or return leg ended: on to ``next``, or ``on_failure`` if it never connected."""
    assert isinstance(step, (TransferStep, ReturnStep))
    if not isinstance(event, ConnectEnded):
        return _unexpected(flow, state)
    connected = event.status in CONNECTED_STATUSES
    fact = ConnectFact(
        seq=state.seq,
        step=step.id,
        destination=_destination(step, state) or "",
        status=event.status,
        connected=connected,
    )
    moved = replace(state, seq=state.seq + 1, attempts=0)
    return _enter(flow, moved, step.next if connected else step.on_failure, facts=(fact,))


def _destination(step: TransferStep | ReturnStep, state: CallState) -> str | None:
    return step.to if isinstance(step, TransferStep) else state.return_to


def _unexpected(flow: Flow, state: CallState) -> Outcome:
    """An event of the wrong kind for this step (a misrouted webhook): stay, and say it again."""
    return Outcome(state, replay(flow, state), stale=True)


# --- identification ---------------------------------------------------------------------

PIN_WITHHELD = "[pin withheld]"  # what the evidence shows instead of a PIN's digits
_ACCOUNT, _PIN_AFTER_ANI, _PIN_AFTER_ACCOUNT = "account", "pin_after_ani", "pin_after_account"


def _answer_identify(flow: Flow, state: CallState, step: Step, event: Event) -> Progress:
    assert isinstance(step, IdentifyStep)
    if isinstance(event, NoInput):
        return _retry(flow, state, step, event, KeypressOutcome.NO_INPUT)
    if not isinstance(event, Digits):
        return _unexpected(flow, state)
    if state.identify_phase == _ACCOUNT:
        return Pending(state, FindCustomer(account=event.digits), event=event)
    assert state.customer is not None
    withheld = Digits(event.seq, PIN_WITHHELD, event.finished_on_key)
    return Pending(state, CheckPin(account=state.customer, pin=event.digits), event=withheld)


def _customer_found(flow: Flow, pending: Pending, step: IdentifyStep, found: CustomerLookup) -> Progress:
    state, event = pending.state, pending.event
    if event is None:  # looked up by caller ID on entering the step
        phase = _PIN_AFTER_ANI if found.account else _ACCOUNT
        state = replace(state, identify_phase=phase, customer=found.account)
        return _question_asked(flow, state, step, pending.speech, pending.facts)
    assert isinstance(event, Digits)
    # Known or not, the PIN is asked next: an unknown account fails at the PIN, as a wrong
    # PIN does (the service checks it against no one), so the line never tells whether an
    # account exists. The account and its PIN are one try. The keypress row, which no
    # caller hears, still says which it was.
    outcome = KeypressOutcome.VALID if found.account else KeypressOutcome.INVALID
    moved = replace(
        state,
        seq=state.seq + 1,
        trail=state.trail + (_typed(event),),
        identify_phase=_PIN_AFTER_ACCOUNT,
        customer=found.account or event.digits,
    )
    return _question_asked(flow, moved, step, (), (_keypress(state, event, outcome),))


def _pin_checked(flow: Flow, pending: Pending, step: IdentifyStep, checked: PinChecked) -> Progress:
    state, event = pending.state, pending.event
    assert isinstance(event, Digits)
    if checked.verdict is PinVerdict.OK:
        how = Identification.ANI_PIN if state.identify_phase == _PIN_AFTER_ANI else Identification.ACCOUNT_PIN
        moved = replace(_accepted(state, event), identify_phase=None, identification=how)
        return _enter(flow, moved, step.next, facts=(_keypress(state, event, KeypressOutcome.VALID),))
    if checked.verdict is PinVerdict.WRONG:
        # After a typed account the pair is asked again from the account number: the
        # caller cannot tell which of the two was wrong, and is not told.
        again = state
        if state.identify_phase == _PIN_AFTER_ACCOUNT:
            again = replace(state, identify_phase=_ACCOUNT, customer=None)
        return _retry(flow, again, step, event, KeypressOutcome.INVALID, apology=step.wrong_pin)
    fact = _keypress(state, event, KeypressOutcome.INVALID)
    moved = _unidentified(_accepted(state, event))
    return _enter(flow, moved, step.on_failure, facts=(fact,), spoken=_lock_words(flow, moved, step, checked))


def _lock_words(flow: Flow, state: CallState, step: IdentifyStep, checked: PinChecked) -> tuple[str, ...]:
    """How long PIN entry stays locked, or (a hard lock) whom to ask to restore it."""
    if checked.verdict is PinVerdict.HARD_LOCKED:
        return (_say(flow, state, step.hard_locked),) if step.hard_locked is not None else ()
    minutes = str(max(1, math.ceil((checked.locked_for_s or 0) / 60)))
    return (_say(flow, state, step.locked, minutes=minutes),) if step.locked is not None else ()


def _answer_number(flow: Flow, state: CallState, step: Step, event: Event) -> Progress:
    assert isinstance(step, NumberStep)
    if isinstance(event, NoInput):
        return _retry(flow, state, step, event, KeypressOutcome.NO_INPUT)
    if not isinstance(event, Digits):
        return _unexpected(flow, state)
    number = keyed_number(event.digits)
    if number is None:
        return _retry(flow, state, step, event, KeypressOutcome.INVALID)
    moved = replace(_accepted(state, event), subject_phone=number, identification=Identification.KEYED_NUMBER)
    return _enter(flow, moved, step.next, facts=(_keypress(state, event, KeypressOutcome.VALID),))


def _needs_number(state: CallState) -> bool:
    return is_withheld(state.caller) and state.identification is Identification.ANI


def _grant_unverified(state: CallState) -> bool:
    """A grant from a withheld caller ID no PIN has identified: no one it could bind."""
    return state.action is Decision.GRANT and is_withheld(state.caller) and not _identified(state)


def _identified(state: CallState) -> bool:
    """Bound to a customer by a PIN on this call (caller ID or account number, then PIN)."""
    return state.customer is not None and state.identification in (
        Identification.ANI_PIN,
        Identification.ACCOUNT_PIN,
    )


def _request_opened(flow: Flow, pending: Pending, step: RequestStep, opened: RequestOpened) -> Progress:
    state = replace(pending.state, reference=opened.reference)
    spoken = pending.speech + (_say(flow, state, step.say),)
    return _enter(flow, state, step.next, pending.facts, spoken)


def _unidentified(state: CallState) -> CallState:
    return replace(state, identify_phase=None, customer=None, identification=Identification.ANI)


def _question_asked(
    flow: Flow, state: CallState, step: IdentifyStep, spoken: tuple[str, ...], facts: tuple[Fact, ...]
) -> Outcome:
    speech = spoken + (_say(flow, state, _question(step, state)),)
    state = replace(state, spoken=speech)
    return Outcome(state, _ask(flow, state, speech), facts)


def _question(step: WaitingStep, state: CallState) -> Prompt:
    """The words that ask for the answer this step waits for now."""
    if isinstance(step, IdentifyStep):
        return step.ask_account if state.identify_phase == _ACCOUNT else step.ask_pin
    return step.say


_ANSWERS: dict[str, Callable[[Flow, CallState, Step, Event], Progress]] = {
    IdentifyStep.kind: _answer_identify,
    NumberStep.kind: _answer_number,
    MenuStep.kind: _answer_menu,
    CollectStep.kind: _answer_collect,
    ConfirmStep.kind: _answer_confirm,
    RecordStep.kind: _answer_record,
    TransferStep.kind: _answer_connect,
    ReturnStep.kind: _answer_connect,
}


def _follow(
    flow: Flow,
    state: CallState,
    step: Step,
    event: Digits,
    choice: Choice,
    channel: Channel,
    *,
    fresh_trail: bool,
) -> Progress:
    """Take an accepted choice: set what it sets, then go where it leads."""
    moved = replace(_accepted(state, event), channel=channel)
    if fresh_trail:
        # A new choice begins: from here, its keys are the evidence trail.
        moved = replace(moved, action=None, trail=(_typed(event),))
    if choice.purpose is not None:
        moved = replace(moved, purpose=choice.purpose, request_type=None)
    if choice.request is not None:
        moved = replace(moved, request_type=choice.request, purpose=None, action=None, recording_sid=None)
    if choice.lang is not None:
        moved = replace(moved, lang=choice.lang.get(state.lang, state.lang))
    if choice.action is not None:
        moved = replace(moved, action=choice.action, chosen_at=step.id)
    target = choice.next
    notice = _notice_needed(flow, moved)
    if notice is not None:  # a grant that needs a notice the caller has not heard: play it first
        moved, target = replace(moved, resume_at=target), notice
    return _enter(flow, moved, target, facts=(_keypress(state, event, KeypressOutcome.VALID),))


def _notice_needed(flow: Flow, state: CallState) -> str | None:
    """The notice step a grant must be preceded by on this call, if it has not been heard."""
    if state.action is not Decision.GRANT or state.purpose is None:
        return None
    notice_step = flow.purposes[state.purpose].notice_step
    if notice_step is None or state.notice_playing == notice_step:
        return None
    notice = flow.steps[notice_step]
    assert isinstance(notice, SayStep)
    return None if notice.notice in state.notices_heard else notice_step


def _accepted(state: CallState, event: Digits) -> CallState:
    return replace(state, seq=state.seq + 1, attempts=0, trail=state.trail + (_typed(event),))


def _typed(event: Digits) -> str:
    """The keys as the caller typed them, the finishing key included (``12#``)."""
    return event.digits + event.finished_on_key


def _repeat(flow: Flow, state: CallState, step: WaitingStep, event: Digits) -> Outcome:
    """``*``: say the question again; a request, not a mistake, so no attempt is used."""
    moved = replace(state, seq=state.seq + 1)
    speech = (_say(flow, moved, step.say),)
    moved = replace(moved, spoken=speech)
    return Outcome(moved, _ask(flow, moved, speech), (_keypress(state, event, KeypressOutcome.VALID),))


def _retry(
    flow: Flow,
    state: CallState,
    step: WaitingStep,
    event: Event,
    outcome: KeypressOutcome,
    *,
    apology: Prompt | None = None,
) -> Progress:
    """Re-prompt after a wrong answer or silence; after too many attempts, give up politely.

    Giving up ends the call, except at an identify step, which goes to its
    ``on_failure`` step (the caller may still do what needs no identification).
    """
    fact = _keypress(state, event, outcome)
    attempts = state.attempts + 1
    moved = replace(state, seq=state.seq + 1, attempts=attempts)
    if attempts >= (step.retry.max_attempts or flow.max_attempts):
        if isinstance(step, IdentifyStep):
            return _enter(flow, _unidentified(replace(moved, attempts=0)), step.on_failure, facts=(fact,))
        return _finish(flow, moved, (_say(flow, moved, flow.messages["too_many_attempts"]),), (fact,))
    own = step.retry.on_no_input if outcome is KeypressOutcome.NO_INPUT else step.retry.on_invalid
    apology = apology or own or flow.messages[outcome.value]
    speech = (_say(flow, moved, apology), _say(flow, moved, _question(step, moved)))
    moved = replace(moved, spoken=speech)
    return Outcome(moved, _ask(flow, moved, speech), (fact,))


def _keypress(state: CallState, event: Event, outcome: KeypressOutcome) -> KeypressFact:
    digits = event.digits if isinstance(event, Digits) else ""
    finished_on_key = event.finished_on_key if isinstance(event, Digits) else ""
    return KeypressFact(
        seq=state.seq,
        step=state.step,
        digits=digits,
        finished_on_key=finished_on_key,
        outcome=outcome,
        heard=state.heard,
        lang=state.lang,
    )


# --- entering steps ----------------------------------------------------------------------


def _enter(
    flow: Flow,
    state: CallState,
    step_id: str | None,
    facts: tuple[Fact, ...] = (),
    spoken: tuple[str, ...] = (),
) -> Progress:
    """Walk from ``step_id`` through steps that need no input, collecting what is said."""
    for _ in range(MAX_CHAINED_STEPS):
        if step_id is None or step_id not in flow.steps:
            raise FlowError(flow.name, state.step, f"no step {step_id!r} to go to")
        step = flow.steps[step_id]
        state = replace(state, step=step.id)
        bypass = _bypass(state, step)
        if bypass is not None:
            step_id, more = bypass
            facts += more
            continue
        if isinstance(step, RequestStep):
            assert state.request_type is not None, "a request step needs a request choice first"
            return Pending(state, OpenRequest(state.request_type, state.recording_sid), facts, spoken)
        spoken += (_say(flow, state, step.say),)
        if isinstance(step, SayStep) and step.notice is not None:
            # Heard whole before the next answer (fixed); counted when the call answers after it.
            step_id = state.resume_at or step.next
            state = replace(state, notice_playing=step.id, fixed=len(spoken), resume_at=None)
            continue
        if isinstance(step, DecideStep):
            facts += (_decision(flow, state, step),)
        if isinstance(step, SayStep | DecideStep):
            step_id = step.next
            continue
        return _stop_at(flow, state, step, spoken, facts)
    raise FlowError(flow.name, state.step, "too many steps without a question")


def _bypass(state: CallState, step: Step) -> tuple[str, tuple[Fact, ...]] | None:
    """Where a step that has nothing to do on this call sends it instead, silently."""
    if isinstance(step, ReturnStep) and state.return_to is None:
        # Nobody transferred this caller in: there is no one to return them to.
        return step.on_failure, (ConnectFact(state.seq, step.id, "", "no-return-target", connected=False),)
    if isinstance(step, IdentifyStep) and _identified(state):
        return step.next, ()  # already identified on this call
    if isinstance(step, NumberStep) and step.on_grant and _grant_unverified(state):
        return step.on_grant, ()  # a keyed-in number can never be granted for
    if isinstance(step, NumberStep) and not _needs_number(state):
        return step.next, ()  # the caller ID (or the identified customer) is the subject
    return None


def _stop_at(flow: Flow, state: CallState, step: Step, spoken: tuple[str, ...], facts: tuple[Fact, ...]) -> Progress:
    """The chain ends here: the call hangs up, waits for an answer, or waits for a lookup."""
    if isinstance(step, GoodbyeStep):
        return _finish(flow, state, spoken, facts)
    if isinstance(step, IdentifyStep):
        state = replace(state, identify_phase=None, customer=None, attempts=0)
        if is_withheld(state.caller):  # no caller ID to match: ask for the account
            return _question_asked(flow, replace(state, identify_phase=_ACCOUNT), step, spoken, facts)
        return Pending(state, FindCustomer(phone=state.caller), facts, spoken)
    state = replace(state, spoken=spoken)
    return Outcome(state, _ask(flow, state, spoken), facts)


def _decision(flow: Flow, state: CallState, step: DecideStep) -> DecisionFact:
    if state.purpose is None or state.action is None:
        raise FlowError(flow.name, step.id, "reached a decision with no pending choice")
    identified = _identified(state)
    grant = state.action is Decision.GRANT
    purpose = flow.purposes[state.purpose]
    if _grant_unverified(state):
        raise FlowError(flow.name, step.id, "a grant binds only a verified subject, never a keyed-in number")
    if grant and purpose.notice_step is not None and not _notice_was_heard(flow, state, purpose.notice_step):
        raise FlowError(flow.name, step.id, f"a {state.purpose} grant needs its notice heard whole on the call first")
    subject = state.customer if identified else (state.caller if grant else (state.subject_phone or state.caller))
    if subject is None or (not identified and state.subject_phone is None and is_withheld(state.caller)):
        raise FlowError(flow.name, step.id, "a decision needs a subject: identify or ask for the number first")
    return DecisionFact(
        seq=state.seq - 1,  # the confirming keypress
        step=step.id,
        purpose=state.purpose,
        action=Decision(state.action),
        channel=Channel.AGENT_ASSISTED if state.agent else state.channel,
        identification=state.identification,
        raw_digits=",".join(state.trail),
        heard=state.heard,
        lang=state.lang,
        subject=subject,
        subject_kind=SubjectKind.CUSTOMER if identified else SubjectKind.PHONE,
        recording_sid=state.recording_sid,
        agent=state.agent,
        honor_business_days=purpose.honor_business_days if state.action is Decision.REVOKE else None,
        scope=purpose.scope,
    )


def _finish(flow: Flow, state: CallState, spoken: tuple[str, ...], facts: tuple[Fact, ...]) -> Outcome:
    state = replace(state, finished=True, spoken=spoken)
    return Outcome(state, End(speech=spoken, language=flow.languages[state.lang]), facts)


def _ask(flow: Flow, state: CallState, speech: tuple[str, ...]) -> Instruction:
    """What the state's waiting step plays and waits for: keys, a recording or a connection."""
    step = flow.steps[state.step]
    language = flow.languages[state.lang]
    if isinstance(step, RecordStep):
        return Record(
            speech=speech,
            language=language,
            seq=state.seq,
            max_length_s=step.max_length_s,
            timeout_s=flow.no_input_timeout_s,
            finish_on_key=step.finish_on_key,
        )
    if isinstance(step, (TransferStep, ReturnStep)):
        destination = _destination(step, state)
        if destination is None:
            raise FlowError(flow.name, step.id, "nowhere to connect the caller to")
        return Connect(speech=speech, language=language, seq=state.seq, destination=destination)
    many = isinstance(step, (CollectStep, IdentifyStep, NumberStep))
    return Ask(
        speech=speech,
        language=flow.languages[state.lang],
        seq=state.seq,
        num_digits=None if many else SINGLE_KEY,
        timeout_s=flow.no_input_timeout_s,
        finish_on_key=CollectStep.finish_on_key if many else "",
        fixed=state.fixed,
    )


def _notice_was_heard(flow: Flow, state: CallState, notice_step: str) -> bool:
    notice = flow.steps[notice_step]
    return isinstance(notice, SayStep) and notice.notice in state.notices_heard


def _say(flow: Flow, state: CallState, prompt: Prompt, **extra: str) -> str:
    fields: dict[str, str] = dict(extra)
    if state.reference is not None:
        fields["reference"] = " ".join(state.reference)  # read out digit by digit
    if state.purpose is not None:
        purpose = flow.purposes[state.purpose]
        fields["purpose"] = purpose.label.text(state.lang)
        if purpose.statement is not None:
            fields["statement"] = purpose.statement.text(state.lang)
        if state.action is not None:
            fields["choice"] = purpose.describe(Decision(state.action)).text(state.lang)
    return prompt.text(state.lang, **fields)
