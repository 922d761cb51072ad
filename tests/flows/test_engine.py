"""The engine alone: definitions in, instructions and facts out, no I/O."""

from __future__ import annotations

import pytest

from flows import engine
from flows.loader import FlowDefinitionError, builtin_flows, parse_toml, version_of
from flows.model import Ask, CallStart, Decision, DecisionFact, Digits, End, KeypressFact, NoInput

FLOW = builtin_flows()["consent-line"]
CALL = CallStart(call_sid="CA" + "0" * 32, caller="+14155550123", dialed="+18445550100")


def run(*presses: str):
    outcome = engine.start(FLOW, CALL)
    for keys in presses:
        outcome = engine.advance(FLOW, outcome.state, Digits(outcome.state.seq, keys))
    return outcome


def test_the_first_prompt_is_a_question_numbered_zero() -> None:
    outcome = engine.start(FLOW, CALL)

    assert isinstance(outcome.instruction, Ask)
    assert outcome.instruction.seq == 0
    assert outcome.state.step == "main_menu"
    assert outcome.facts == ()


def test_a_decision_comes_only_with_the_confirming_key() -> None:
    before = run("1", "2")
    after = run("1", "2", "1")

    assert not before.decides
    decision = [f for f in after.facts if isinstance(f, DecisionFact)]
    assert [(d.purpose, d.action, d.raw_digits, d.seq) for d in decision] == [
        ("cpni", Decision.REVOKE, "1,2,1", 2)
    ]
    assert decision[0].heard == before.state.heard
    assert isinstance(after.instruction, End) and after.state.finished


def test_an_answer_to_an_earlier_prompt_does_not_move_the_call() -> None:
    at_readback = run("1", "1")
    stale = engine.advance(FLOW, at_readback.state, Digits(seq=0, digits="1"))

    assert stale.stale
    assert stale.state == at_readback.state
    assert stale.facts == ()
    assert stale.instruction == at_readback.instruction


def test_silence_is_evidence_too() -> None:
    outcome = engine.advance(FLOW, engine.start(FLOW, CALL).state, NoInput(seq=0))

    assert outcome.facts == (
        KeypressFact(
            seq=0,
            step="main_menu",
            digits="",
            finished_on_key="",
            outcome="no_input",  # type: ignore[arg-type]
            heard=engine.start(FLOW, CALL).state.heard,
            lang="en",
        ),
    )


def test_hanging_up_midway_is_an_abandon_at_that_step() -> None:
    assert [f.step for f in engine.hang_up(FLOW, run("1").state)] == ["cpni_choice"]
    assert engine.hang_up(FLOW, run("1", "1", "1").state) == ()


def test_the_version_is_a_content_hash_that_ignores_formatting() -> None:
    text = """
name = "tiny"
start = "bye"
default_language = "en"
languages = { en = "en-US" }
[messages]
invalid.en = "i"
no_input.en = "n"
too_many_attempts.en = "t"
system_error.en = "s"
unknown_call.en = "u"
[steps.bye]
kind = "goodbye"
say.en = "Goodbye."
"""
    reformatted = "# a comment\n" + text.replace('say.en = "Goodbye."', 'say = { en = "Goodbye." }')
    changed = text.replace("Goodbye.", "Good bye.")

    assert parse_toml(text).version == parse_toml(reformatted).version
    assert parse_toml(text).version != parse_toml(changed).version
    assert parse_toml(text).version == version_of(parse_toml(text).definition)


def test_a_definition_with_broken_links_lists_every_problem() -> None:
    text = """
name = "broken"
start = "menu"
default_language = "en"
languages = { en = "en-US", es = "es-US" }
[messages]
invalid.en = "i"
[steps.menu]
kind = "menu"
say.en = "Press 1 for {nonsense}."
choices."1" = { next = "nowhere" }
[steps.orphan]
kind = "goodbye"
say.en = "Bye."
"""
    with pytest.raises(FlowDefinitionError) as caught:
        parse_toml(text)
    problems = "\n".join(caught.value.problems)

    assert "message 'no_input' is missing" in problems
    assert "step 'menu' goes to unknown step 'nowhere'" in problems
    assert "step 'menu' has no 'es' text" in problems
    assert "uses unknown placeholder {nonsense}" in problems
    assert "step 'orphan' is unreachable" in problems
