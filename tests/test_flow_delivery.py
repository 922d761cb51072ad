"""Flows under real Twilio delivery: dialing strings, retries, races, stale webhooks, deploys."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp.test_utils import unused_port

from flows.loader import builtin_flows, version_of
from tests.conftest import AUTH_TOKEN, Storage, running_service
from tests.fake_twilio import FakeTwilio

FLOW = builtin_flows()["consent-line"]
RESTRICT_READBACK = FLOW.steps["confirm"].say.text("en", choice=FLOW.purposes["cpni"].revoke.text("en"))
ENTER_CODE = FLOW.steps["express_code"].say.text("en")


async def decisions(db, call_sid: str):
    return await db.fetch("SELECT * FROM consent_events WHERE call_sid = $1 ORDER BY id", call_sid)


async def test_a_whole_dialing_string_in_one_gather_goes_straight_to_the_readback(twilio: FakeTwilio, db) -> None:
    call = twilio.call()
    menu = await call.dial()
    # A <Gather> that collected the whole string sends it at once, without the '#'.
    params = call.params() | {"Digits": "*12", "FinishedOnKey": "#"}
    readback = await twilio.post(menu.gather.get("action"), params)
    call.current = readback
    done = await call.press("1")

    assert readback.says == [RESTRICT_READBACK]
    assert "recorded" in done.heard
    rows = await decisions(db, call.call_sid)
    assert [(r["action"], r["channel"], r["raw_digits"]) for r in rows] == [("revoke", "dialing_string", "*12#,1")]


@pytest.mark.parametrize("buffered", [True, False], ids=["keys-buffered", "keys-lost"])
async def test_star_then_the_code_works_whether_or_not_twilio_keeps_typed_ahead_keys(
    twilio: FakeTwilio, db, buffered: bool
) -> None:
    call = twilio.call()
    await call.dial()
    answer = await call.press("*12#", buffered=buffered)
    if not buffered:
        # The menu's Gather ended at '*'; the caller is asked for the code and types it again.
        assert answer.says == [ENTER_CODE]
        gather = answer.gather
        assert (gather.get("finishOnKey"), gather.get("numDigits")) == ("#", None)
        answer = await call.press("12#")
    assert answer.says == [RESTRICT_READBACK]
    await call.press("1")

    rows = await decisions(db, call.call_sid)
    assert [(r["action"], r["channel"], r["raw_digits"]) for r in rows] == [("revoke", "dialing_string", "*,12#,1")]


async def test_an_unknown_code_is_refused_and_asked_again(twilio: FakeTwilio, db) -> None:
    call = twilio.call()
    await call.dial()
    answer = await call.press("*99#")

    assert answer.says == ["Sorry, that is not a code we know.", ENTER_CODE]
    await call.hang_up()  # menu keypresses are stored with the call's next commit or its ending
    outcomes = await db.fetch(
        "SELECT digits, finished_on_key, outcome FROM keypresses WHERE call_sid = $1 ORDER BY seq", call.call_sid
    )
    assert [tuple(r) for r in outcomes] == [("*", "", "valid"), ("99", "#", "invalid")]


async def test_star_elsewhere_repeats_the_question_without_using_an_attempt(twilio: FakeTwilio, db) -> None:
    call = twilio.call()
    await call.dial()
    choice = await call.press("1")
    again = await call.press("*")

    assert again.says == [FLOW.steps["cpni_choice"].say.text("en")]
    await call.keys("9", "9")  # two wrong keys: the repeat did not count as a third
    last = await call.press("2")
    assert last.says == [RESTRICT_READBACK]
    assert choice.says[-1] == again.says[0]


async def test_concurrent_deliveries_of_one_webhook_get_one_answer_and_one_row(twilio: FakeTwilio, db) -> None:
    call = twilio.call()
    await call.dial()
    await call.keys("1", "2")
    first = await call.press("1")
    answers = await asyncio.gather(*(call.retry() for _ in range(4)))

    assert {a.body for a in answers} == {first.body}
    assert len(await decisions(db, call.call_sid)) == 1

    racer = twilio.call()
    await racer.dial()
    await racer.keys("1", "2")
    url = racer.current.gather.get("action")
    params = racer.params() | {"Digits": "1", "FinishedOnKey": ""}
    raced = await asyncio.gather(*(twilio.post(url, params, token="same-token-123") for _ in range(5)))

    assert len({a.body for a in raced}) == 1
    assert "recorded" in raced[0].heard
    assert len(await decisions(db, racer.call_sid)) == 1
    assert await db.fetchval("SELECT count(*) FROM keypresses WHERE call_sid = $1", racer.call_sid) == 3


async def test_a_stale_webhook_for_an_earlier_prompt_does_not_move_the_call_back(twilio: FakeTwilio, db) -> None:
    call = twilio.call()
    await call.dial()
    menu_answer = call.last
    readback = await call.keys("1", "2")
    # The main menu's keypress arrives again, late, as a new event (new token).
    late = await twilio.post(
        menu_answer.url, menu_answer.params | {"Digits": "1", "FinishedOnKey": "", "msg": "Gather End"}
    )

    assert late.status == 200
    assert late.body == readback.body  # the caller keeps hearing where they are
    done = await call.press("1")
    assert "recorded" in done.heard
    steps = await db.fetch("SELECT seq, step FROM keypresses WHERE call_sid = $1 ORDER BY seq", call.call_sid)
    assert [tuple(r) for r in steps] == [(0, "main_menu"), (1, "cpni_choice"), (2, "confirm")]


async def test_a_call_started_on_one_version_finishes_on_it_after_a_deploy(
    storage: Storage, http, db, tmp_path: Path
) -> None:
    port = unused_port()
    async with running_service(storage, port) as old:
        twilio = FakeTwilio(http, old.base_url, AUTH_TOKEN)
        call = twilio.call()
        await call.dial()
        await call.press("1")
    source = (Path(__file__).parents[1] / "flows" / "definitions" / "consent_line.toml").read_text()
    changed = source.replace("To confirm, press 1. To go back, press 2.", "Press 1 if that is right, or 2 to go back.")
    assert changed != source
    (tmp_path / "consent_line.toml").write_text(changed)

    async with running_service(storage, port, IVR_FLOWS_DIR=str(tmp_path)):
        readback = await call.press("2")
        fresh = twilio.call()
        await fresh.dial()
        fresh_readback = await fresh.keys("1", "2")
        await call.press("1")

    assert readback.says[0].endswith("To confirm, press 1. To go back, press 2.")
    assert fresh_readback.says[0].endswith("Press 1 if that is right, or 2 to go back.")
    versions = await db.fetch("SELECT version, definition FROM flow_versions WHERE name = 'consent-line'")
    by_version = {r["version"]: r["definition"] for r in versions}
    assert FLOW.version in by_version and len(by_version) >= 2
    decided = await decisions(db, call.call_sid)
    assert decided[0]["flow_version"] == FLOW.version
    assert "To confirm, press 1." in decided[0]["prompt_text"]
    # The old version's stored definition was never rewritten, and hashes to its version.
    assert version_of(by_version[FLOW.version]) == FLOW.version


async def test_a_number_can_be_pointed_at_a_named_flow_and_language(twilio: FakeTwilio) -> None:
    call = twilio.call()
    answer = await call.dial("flow=consent-line&lang=en")

    assert answer.says[-1] == FLOW.steps["main_menu"].say.text("en")


async def test_a_language_the_flow_lacks_falls_back_to_its_default(twilio: FakeTwilio) -> None:
    answer = await twilio.call().dial("lang=xx")

    assert answer.gather is not None
    assert {say.get("language") for say in answer.root.iter("Say")} == {"en-US"}


async def test_a_misconfigured_flow_name_gets_a_spoken_apology_not_an_error(twilio: FakeTwilio, db) -> None:
    call = twilio.call()
    answer = await call.dial("flow=no-such-flow")

    assert answer.status == 200
    assert answer.says == [FLOW.messages["system_error"].text("en")]
    assert answer.hangs_up
    assert await db.fetchval("SELECT count(*) FROM calls WHERE call_sid = $1", call.call_sid) == 0
