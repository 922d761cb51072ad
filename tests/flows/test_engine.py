"""The engine alone: definitions in, instructions and facts out, no I/O."""

from __future__ import annotations

import pytest

from flows import engine
from flows.loader import FlowDefinitionError, builtin_flows, parse_flow, parse_toml, version_of
from flows.model import (
    Ask,
    CallStart,
    CustomerLookup,
    Decision,
    DecisionFact,
    Digits,
    End,
    FindCustomer,
    KeypressFact,
    NoInput,
    NoticeFact,
    OpenRequest,
    Pending,
    PinChecked,
    PinVerdict,
    Recorded,
    RecordingFact,
    RequestOpened,
)

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
    assert [(d.purpose, d.action, d.raw_digits, d.seq) for d in decision] == [("cpni", Decision.REVOKE, "1,2,1", 2)]
    assert decision[0].heard == before.state.heard
    assert isinstance(after.instruction, End) and after.state.finished


def test_an_answer_to_an_earlier_prompt_does_not_move_the_call() -> None:
    at_readback = run("1", "2")
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
    assert engine.hang_up(FLOW, run("1", "2", "1").state) == ()


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


WITHHELD = CallStart(call_sid="CA" + "1" * 32, caller="+266696687", dialed="+18445550100")


def test_the_cpni_notice_is_heard_whole_and_counts_only_once_the_call_answers_after_it() -> None:
    playing = run("1")
    answered = run("1", "2")

    notice_text = FLOW.steps["cpni_notice"].say.text("en")
    # Said before the question's <Gather> opens (fixed): the caller cannot barge in on it.
    assert playing.instruction.fixed == 1 and playing.instruction.speech[0] == notice_text
    assert not [f for f in playing.facts if isinstance(f, NoticeFact)]  # sent is not heard
    notices = [f for f in answered.facts if isinstance(f, NoticeFact)]
    assert [(n.notice, n.seq, n.lang, n.text) for n in notices] == [("cpni", 1, "en", notice_text)]
    assert answered.state.notices_heard == ("cpni",) and answered.instruction.fixed == 0
    for needed in ("any time", "will not change the service", "within 30 days", "star 1 2 pound"):
        assert needed in notice_text


def test_a_caller_who_hangs_up_during_the_cpni_notice_was_given_no_notice() -> None:
    playing = run("1")

    assert engine.hang_up(FLOW, playing.state) and not playing.state.notices_heard


def test_a_dialed_cpni_grant_plays_the_whole_notice_first_then_identifies() -> None:
    code = run("*11")
    assert isinstance(code, Pending) and isinstance(code.effect, FindCustomer)  # who is calling, by caller ID
    asked = engine.resume(FLOW, code, CustomerLookup("100200300"))

    assert asked.state.step == "who" and asked.state.resume_at is None
    assert asked.state.notice_playing == "cpni_notice"
    notice = FLOW.steps["cpni_notice"].say.text("en")
    assert notice in asked.instruction.speech[: asked.instruction.fixed]  # heard whole before the PIN is asked
    pin = engine.advance(FLOW, asked.state, Digits(asked.state.seq, "1234", "#"))
    assert [f.notice for f in pin.facts if isinstance(f, NoticeFact)] == ["cpni"]


def test_nine_switches_every_prompt_to_spanish_and_back() -> None:
    spanish = run("9")
    english = run("9", "9")

    assert spanish.state.lang == "es"
    assert spanish.instruction.language == "es-US"
    assert spanish.instruction.speech == (FLOW.steps["main_menu"].say.text("es"),)
    assert english.state.lang == "en"


def test_a_telemarketing_revocation_carries_its_ten_business_day_deadline() -> None:
    decision = next(f for f in run("2", "2", "1").facts if isinstance(f, DecisionFact))

    assert (decision.purpose, decision.action, decision.honor_business_days) == ("telemarketing", "revoke", 10)
    grant = next(f for f in run("2", "1", "1").facts if isinstance(f, DecisionFact))
    assert grant.honor_business_days is None


def test_a_withheld_caller_id_is_asked_for_the_number_and_never_becomes_the_subject() -> None:
    outcome = engine.start(FLOW, WITHHELD)
    for keys in ("3", "2"):
        outcome = engine.advance(FLOW, outcome.state, Digits(outcome.state.seq, keys))
    assert outcome.state.step == "for_number"
    wrong = engine.advance(FLOW, outcome.state, Digits(outcome.state.seq, "12345", "#"))
    assert wrong.state.step == "for_number" and wrong.instruction.speech[0].startswith("That is not")
    readback = engine.advance(FLOW, wrong.state, Digits(wrong.state.seq, "4155550123", "#"))
    done = engine.advance(FLOW, readback.state, Digits(readback.state.seq, "1"))

    decision = next(f for f in done.facts if isinstance(f, DecisionFact))
    assert (decision.subject, decision.identification) == ("+14155550123", "keyed_number")


def test_a_withheld_caller_granting_is_asked_for_the_account_without_a_lookup() -> None:
    outcome = engine.start(FLOW, WITHHELD)
    outcome = engine.advance(FLOW, outcome.state, Digits(0, "1"))
    asked = engine.advance(FLOW, outcome.state, Digits(1, "1"))

    assert isinstance(asked.instruction, Ask)
    assert asked.instruction.speech[-1] == "Enter your account number, then press pound."


def _account_typed(found: str | None, pin_answer: PinChecked):
    """A withheld caller granting CPNI types an account number (``found``: whom the
    service found), then a PIN the service answers with ``pin_answer``."""
    outcome = engine.start(FLOW, WITHHELD)
    outcome = engine.advance(FLOW, outcome.state, Digits(0, "1"))
    asked = engine.advance(FLOW, outcome.state, Digits(1, "1"))
    typed = engine.advance(FLOW, asked.state, Digits(asked.state.seq, "5550001", "#"))
    assert isinstance(typed, Pending) and typed.effect == FindCustomer(account="5550001")
    pin_asked = engine.resume(FLOW, typed, CustomerLookup(found))
    checking = engine.advance(FLOW, pin_asked.state, Digits(pin_asked.state.seq, "123456", "#"))
    assert isinstance(checking, Pending) and checking.effect.account == "5550001"
    return pin_asked, engine.resume(FLOW, checking, pin_answer)


@pytest.mark.parametrize("verdict", [PinVerdict.WRONG, PinVerdict.LOCKED, PinVerdict.HARD_LOCKED])
def test_an_unknown_account_is_asked_for_a_pin_and_fails_as_a_wrong_pin_does(verdict) -> None:
    answer = PinChecked(verdict, 900 if verdict is PinVerdict.LOCKED else None)
    known_asked, known = _account_typed("5550001", answer)
    unknown_asked, unknown = _account_typed(None, answer)

    assert unknown_asked.instruction == known_asked.instruction  # the PIN is asked either way
    assert unknown.instruction == known.instruction and unknown.state.attempts == known.state.attempts
    assert [f.outcome for f in unknown_asked.facts] == ["invalid"]  # the evidence still says which
    assert [f.outcome for f in known_asked.facts] == ["valid"]
    if verdict is PinVerdict.WRONG:  # the pair is asked again, from the account number
        assert unknown.instruction.speech == (
            "Sorry, we could not confirm who you are with those details.",
            "Enter your account number, then press pound.",
        )
    if verdict is PinVerdict.HARD_LOCKED:
        assert unknown.instruction.speech[0].startswith("PIN entry for this account is locked. To restore it")


def test_a_known_caller_is_looked_up_by_caller_id() -> None:
    pending = engine.advance(FLOW, run("1").state, Digits(1, "1"))

    assert isinstance(pending, Pending) and pending.effect == FindCustomer(phone=CALL.caller)
    asked = engine.resume(FLOW, pending, CustomerLookup("1234567"))
    assert asked.instruction.speech[-1] == "Enter your PIN, then press pound."


def test_a_request_gets_its_reference_read_out_digit_by_digit() -> None:
    at_description = run("8", "2")
    pending = engine.advance(FLOW, at_description.state, NoInput(at_description.state.seq))

    assert isinstance(pending, Pending)
    assert pending.effect == OpenRequest("forum_removal", None)
    done = engine.resume(FLOW, pending, RequestOpened("100042"))
    assert "Your reference number is 1 0 0 0 4 2." in done.state.heard
    assert isinstance(done.instruction, End)


def test_a_too_short_statement_is_kept_but_asked_again() -> None:
    at_statement = _identified_at_statement()
    short = engine.advance(FLOW, at_statement, Recorded(at_statement.seq, "RE" + "1" * 32, "https://x", 0, "#"))

    assert [type(f) for f in short.facts][0] is RecordingFact
    assert short.state.step == "statement"
    assert short.instruction.speech[0] == "We did not hear your statement."


def test_hanging_up_mid_statement_keeps_it_and_decides_nothing() -> None:
    at_statement = _identified_at_statement()
    gone = engine.advance(FLOW, at_statement, Recorded(at_statement.seq, "RE" + "2" * 32, "https://x", 4, "hangup"))

    assert not gone.decides and isinstance(gone.instruction, End)
    assert [f.step for f in engine.hang_up(FLOW, gone.state)] == ["statement"]


def _identified_at_statement():
    pending = engine.advance(FLOW, run("6").state, Digits(1, "1"))
    asked = engine.resume(FLOW, pending, CustomerLookup("1234567"))
    checking = engine.advance(FLOW, asked.state, Digits(asked.state.seq, "4831", "#"))
    outcome = engine.resume(FLOW, checking, PinChecked(PinVerdict.OK))
    assert outcome.state.step == "statement"
    return outcome.state


def test_a_version_stored_before_on_grant_existed_still_loads() -> None:
    """Calls in progress across an upgrade finish on their own version: its definition,
    kept in Postgres, must still parse though it predates ``on_grant``."""
    definition = {**FLOW.definition, "steps": dict(FLOW.definition["steps"])}
    definition["steps"]["for_number"] = {k: v for k, v in definition["steps"]["for_number"].items() if k != "on_grant"}
    definition["steps"].pop("hidden_grant")
    older = parse_flow(definition)

    assert older.steps["for_number"].on_grant is None and older.version != FLOW.version
