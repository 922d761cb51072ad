"""Properties of the engine over any sequence of caller input (hypothesis)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows import engine
from flows.loader import builtin_flows, parse_toml
from flows.model import (
    Ask,
    CallStart,
    CheckPin,
    ConfirmStep,
    Connect,
    ConnectEnded,
    CustomerLookup,
    Decision,
    DecisionFact,
    Digits,
    End,
    Event,
    FindCustomer,
    Identification,
    KeypressFact,
    NoInput,
    NoticeFact,
    OpenRequest,
    Pending,
    PinChecked,
    PinVerdict,
    Record,
    Recorded,
    RecordingFact,
    RequestOpened,
)
from storage.sessions import PendingPress, Session, decode_session, encode_session

FLOW = builtin_flows()["consent-line"]
TEST_FLOWS = Path(__file__).parents[1] / "data" / "flows"
VERBAL = parse_toml((TEST_FLOWS / "verbal_test.toml").read_text())
IDENTIFY = parse_toml((TEST_FLOWS / "identify_test.toml").read_text())
lookups = st.one_of(
    st.builds(CustomerLookup, st.sampled_from([None, "1234567890"])),
    st.builds(PinChecked, st.sampled_from(list(PinVerdict))),
)


def settle(flow, progress, data):
    """Answer the engine's lookups with whatever the service might say."""
    facts = ()
    while isinstance(progress, Pending):
        assert pin_is_withheld(progress)
        facts += progress.facts
        result = data.draw(lookups)
        if isinstance(progress.effect, FindCustomer) and isinstance(result, PinChecked):
            result = CustomerLookup("1234567890")
        if isinstance(progress.effect, CheckPin) and isinstance(result, CustomerLookup):
            result = PinChecked(PinVerdict.WRONG)
        if isinstance(progress.effect, OpenRequest):
            result = RequestOpened("100001")
        progress = engine.resume(flow, progress, result)
    return replace(progress, facts=facts + progress.facts)


def pin_is_withheld(pending) -> bool:
    return not isinstance(pending.effect, CheckPin) or pending.event.digits == engine.PIN_WITHHELD


CALL = CallStart(call_sid="CA" + "f" * 32, caller="+14155550123", dialed="+18445550100")
WITHHELD_CALL = CallStart(call_sid="CA" + "e" * 32, caller="+266696687", dialed="+18445550100")

keys = st.text(alphabet="0123456789*#", min_size=0, max_size=6)
recording = st.builds(lambda s: ("recorded", s), st.sampled_from(["#", "hangup", "1"]))
connection = st.builds(lambda s: ("connect", s), st.sampled_from(["completed", "busy", "no-answer", "bridged"]))
# Each input answers the current prompt, or (stale) an earlier or later one.
inputs = st.lists(
    st.tuples(st.one_of(keys, st.none(), recording, connection), st.sampled_from([0, 0, 0, 0, -1, 1])),
    max_size=25,
)


def event_for(state_seq: int, given, skew: int) -> Event:
    seq = max(0, state_seq + skew)
    if given is None:
        return NoInput(seq)
    if isinstance(given, tuple) and given[0] == "recorded":
        return Recorded(seq, "RE" + "a" * 32, "https://api.twilio.com/rec", 5, given[1])
    if isinstance(given, tuple):
        return ConnectEnded(seq, given[1])
    return Digits(seq, given)


def assert_bound_rightly(flow, call: CallStart, decision: DecisionFact, notices: set[str]) -> None:
    """A grant binds only a verified subject (CR-3) and, where its purpose has a notice,
    comes only after that notice was heard whole on the call (CR-7)."""
    if decision.action is not Decision.GRANT:
        return
    assert decision.identification is not Identification.KEYED_NUMBER
    assert decision.subject_kind == "customer" or decision.subject == call.caller != WITHHELD_CALL.caller
    notice_step = flow.purposes[decision.purpose].notice_step
    if notice_step is not None:
        assert flow.steps[notice_step].notice in notices


# The test flows expect a caller ID; the consent line also serves callers who withhold it.
@pytest.mark.parametrize(
    ("flow", "call"),
    [(FLOW, CALL), (FLOW, WITHHELD_CALL), (VERBAL, CALL), (IDENTIFY, CALL)],
    ids=["consent-line", "consent-line-withheld", "verbal-test", "identify-test"],
)
@settings(max_examples=300, deadline=None)
@given(steps=inputs, data=st.data())
def test_any_input_leads_to_a_question_or_the_end_and_decisions_need_a_confirm(flow, call, steps, data) -> None:
    outcome = settle(flow, engine.start(flow, call), data)
    notices: set[str] = set()
    decisions = 0
    for keys_or_silence, skew in steps:
        before = outcome.state
        event = event_for(before.seq, keys_or_silence, skew)
        outcome = settle(flow, engine.advance(flow, before, event), data)

        assert isinstance(outcome.instruction, (Ask, Record, Connect, End))
        assert outcome.state.seq >= before.seq
        if outcome.stale:
            assert outcome.state == before and outcome.facts == ()
            continue
        assert outcome.state.seq == before.seq + 1
        for fact in outcome.facts:
            if isinstance(fact, KeypressFact) and fact.step == "who" and before.identify_phase != "account":
                assert fact.digits in ("", engine.PIN_WITHHELD)  # PIN digits never become evidence
        hung_up = any(isinstance(f, RecordingFact) and f.ended_by == "hangup" for f in outcome.facts)
        assert isinstance(outcome.instruction, End) == (outcome.state.finished or hung_up)
        if not isinstance(outcome.instruction, End):
            assert outcome.instruction.seq == outcome.state.seq
            assert outcome.state.step in flow.steps
        notices |= {f.notice for f in outcome.facts if isinstance(f, NoticeFact)}
        made = [f for f in outcome.facts if isinstance(f, DecisionFact)]
        for decision in made:
            assert_bound_rightly(flow, call, decision, notices)
        if made:
            assert isinstance(flow.steps[before.step], ConfirmStep)
            assert isinstance(event, Digits) and event.digits == ConfirmStep.confirm_key
            assert made[0].purpose == before.purpose and made[0].action == before.action
            assert made[0].heard == before.heard
            if made[0].subject_kind == "customer":
                assert made[0].identification in ("ani_pin", "account_pin")
        decisions += len(made)
    assert decisions <= 1  # the consent line ends after its one decision


@settings(max_examples=200, deadline=None)
@given(steps=inputs, data=st.data())
def test_a_call_session_survives_the_trip_through_redis_unchanged(steps, data) -> None:
    outcome = settle(FLOW, engine.start(FLOW, CALL), data)
    pending: tuple[PendingPress, ...] = ()
    for n, (given_input, skew) in enumerate(steps):
        event = event_for(outcome.state.seq, given_input, skew)
        outcome = settle(FLOW, engine.advance(FLOW, outcome.state, event), data)
        pending += tuple(
            PendingPress(f, f"token-{n}", f"2026-11-28T03:0{n % 10}:00+00:00")
            for f in outcome.facts
            if isinstance(f, KeypressFact)
        )
        session = Session(outcome.state, pending, f"token-{n}", "<Response/>" if n % 2 else None, "0123456789abcdef")
        assert decode_session(encode_session(session, session.rev)) == session


@pytest.mark.parametrize("flow", [FLOW, VERBAL, IDENTIFY], ids=lambda f: f.name)
@settings(max_examples=200, deadline=None)
@given(steps=inputs, data=st.data())
def test_replaying_a_state_gives_exactly_what_the_caller_was_told(flow, steps, data) -> None:
    """The engine flags every answer its state cannot rebuild, and no other: the service
    keeps exactly those, so a repeated webhook always hears the same words."""
    outcome = settle(flow, engine.start(flow, CALL), data)
    for given_input, skew in steps:
        event = event_for(outcome.state.seq, given_input, skew)
        outcome = settle(flow, engine.advance(flow, outcome.state, event), data)
        assert outcome.keep_answer == (engine.replay(flow, outcome.state) != outcome.instruction)
        if outcome.state.finished or not isinstance(outcome.instruction, End):
            assert not outcome.keep_answer
