"""Properties of the engine over any sequence of caller input (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows import engine
from pathlib import Path

from flows.loader import builtin_flows, parse_toml
from flows.model import (
    Ask,
    CallStart,
    ConfirmStep,
    Connect,
    ConnectEnded,
    DecisionFact,
    Digits,
    End,
    Event,
    NoInput,
    Record,
    Recorded,
)
from storage.sessions import decode_state, encode_state

FLOW = builtin_flows()["consent-line"]
VERBAL = parse_toml((Path(__file__).parents[1] / "data" / "flows" / "verbal_test.toml").read_text())
CALL = CallStart(call_sid="CA" + "f" * 32, caller="+14155550123", dialed="+18445550100")

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


@pytest.mark.parametrize("flow", [FLOW, VERBAL], ids=lambda f: f.name)
@settings(max_examples=300, deadline=None)
@given(steps=inputs)
def test_any_input_leads_to_a_question_or_the_end_and_decisions_need_a_confirm(flow, steps) -> None:
    outcome = engine.start(flow, CALL)
    decisions = 0
    for keys_or_silence, skew in steps:
        before = outcome.state
        event = event_for(before.seq, keys_or_silence, skew)
        outcome = engine.advance(flow, before, event)

        assert isinstance(outcome.instruction, (Ask, Record, Connect, End))
        assert outcome.state.seq >= before.seq
        if outcome.stale:
            assert outcome.state == before and outcome.facts == ()
            continue
        assert outcome.state.seq == before.seq + 1
        assert isinstance(outcome.instruction, End) == outcome.state.finished
        if not isinstance(outcome.instruction, End):
            assert outcome.instruction.seq == outcome.state.seq
            assert outcome.state.step in flow.steps
        made = [f for f in outcome.facts if isinstance(f, DecisionFact)]
        if made:
            assert isinstance(flow.steps[before.step], ConfirmStep)
            assert isinstance(event, Digits) and event.digits == ConfirmStep.confirm_key
            assert made[0].purpose == before.purpose and made[0].action == before.action
            assert made[0].heard == before.heard
        decisions += len(made)
    assert decisions <= 1  # the consent line ends after its one decision


@settings(max_examples=200, deadline=None)
@given(inputs)
def test_a_call_state_survives_the_trip_through_redis_unchanged(steps) -> None:
    outcome = engine.start(FLOW, CALL)
    for keys_or_silence, skew in steps:
        outcome = engine.advance(FLOW, outcome.state, event_for(outcome.state.seq, keys_or_silence, skew))
        assert decode_state(encode_state(outcome.state)) == outcome.state


@settings(max_examples=200, deadline=None)
@given(inputs)
def test_replaying_a_state_gives_exactly_what_the_caller_was_told(steps) -> None:
    outcome = engine.start(FLOW, CALL)
    for keys_or_silence, skew in steps:
        outcome = engine.advance(FLOW, outcome.state, event_for(outcome.state.seq, keys_or_silence, skew))
        replayed = engine.replay(FLOW, outcome.state)
        assert " ".join(replayed.speech) == " ".join(outcome.instruction.speech)
