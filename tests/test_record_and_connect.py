"""<Record> for verbal statements and <Dial>/<Enqueue> for transfers, driven like Twilio."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import unused_port

from tests.conftest import AUTH_TOKEN, Service, Storage, running_service
from tests.fake_twilio import FakeTwilio

TEST_FLOWS = Path(__file__).parent / "data" / "flows"
ANNOUNCEMENT = (
    "This part of the call is recorded. After the beep, say your name and that you agree. "
    "Press pound when you are done."
)


@pytest.fixture
async def flows_service(storage: Storage) -> AsyncIterator[Service]:
    async with running_service(
        storage, unused_port(), IVR_FLOWS_DIR=str(TEST_FLOWS), AGENT_TARGET="client:support-desk"
    ) as running:
        yield running


@pytest.fixture
def phone(flows_service: Service, http) -> FakeTwilio:
    return FakeTwilio(http, flows_service.base_url, AUTH_TOKEN)


async def test_a_verbal_statement_is_announced_recorded_and_backs_the_decision(phone: FakeTwilio, db) -> None:
    call = phone.call()
    await call.dial("flow=verbal-test")
    prompt = await call.press("1")

    assert prompt.says == [ANNOUNCEMENT]  # announced before any recording starts
    assert prompt.verbs == ["Say", "Record", "Redirect"]
    again = await call.retry()  # the same webhook delivered twice: word for word the same <Record>
    assert again.body == prompt.body
    record = prompt.root.find("Record")
    assert record.get("action") == f"{phone.base_url}/twilio/recording?seq=1"
    assert (record.get("maxLength"), record.get("finishOnKey"), record.get("playBeep")) == ("60", "#", "true")
    assert record.get("recordingStatusCallback") == f"{phone.base_url}/twilio/recording-status"
    readback = await call.record(seconds=9, ended_by="#")
    assert readback.says == [
        "You chose to give consent to publish your testimonial. To confirm, press 1. To go back, press 2."
    ]
    await call.press("1")
    processed = await call.recording_processed("completed")

    assert processed.status == 200
    recording = await db.fetchrow("SELECT * FROM recordings WHERE call_sid = $1", call.call_sid)
    assert (recording["duration_s"], recording["ended_by"], recording["prompt_text"]) == (9, "#", ANNOUNCEMENT)
    decision = await db.fetchrow("SELECT * FROM consent_events WHERE call_sid = $1", call.call_sid)
    assert (decision["purpose"], decision["action"], decision["channel"]) == ("testimonial", "grant", "verbal")
    assert decision["recording_sid"] == recording["recording_sid"]
    status = await db.fetchrow("SELECT * FROM recording_statuses WHERE recording_sid = $1", recording["recording_sid"])
    assert (status["status"], status["call_sid"], status["duration_s"]) == ("completed", call.call_sid, 9)


async def test_saying_nothing_re_asks_for_the_statement(phone: FakeTwilio, db) -> None:
    call = phone.call()
    await call.dial("flow=verbal-test")
    await call.press("1")
    again = await call.stay_silent()

    assert again.says == ["We did not hear anything.", ANNOUNCEMENT]
    assert again.root.find("Record").get("action").endswith("seq=2")
    assert await db.fetchval("SELECT count(*) FROM recordings WHERE call_sid = $1", call.call_sid) == 0


async def test_hanging_up_while_recording_keeps_the_recording_but_decides_nothing(phone: FakeTwilio, db) -> None:
    call = phone.call()
    await call.dial("flow=verbal-test")
    await call.press("1")
    await call.hang_up()  # the status callback may arrive first…
    await call.record(seconds=4, ended_by="hangup")  # …then the Record action, with Digits=hangup

    recording = await db.fetchrow("SELECT ended_by FROM recordings WHERE call_sid = $1", call.call_sid)
    assert recording["ended_by"] == "hangup"
    assert await db.fetchval("SELECT count(*) FROM consent_events WHERE call_sid = $1", call.call_sid) == 0


async def test_zero_reaches_the_agents_through_the_configured_target(phone: FakeTwilio, db) -> None:
    call = phone.call()
    await call.dial("flow=verbal-test")
    transfer = await call.press("0")

    assert transfer.says == ["Connecting you to an agent."]
    dial = transfer.root.find("Dial")
    assert dial.get("action") == f"{phone.base_url}/twilio/connected?seq=1"
    assert dial.get("timeout") == "30"
    assert dial.find("Client").text == "support-desk"
    done = await call.connection_ends("completed")
    assert done.says == ["Goodbye."] and done.hangs_up
    row = await db.fetchrow("SELECT destination, status, connected FROM connections WHERE call_sid = $1", call.call_sid)
    assert tuple(row) == ("agents", "completed", True)


async def test_a_busy_agent_line_is_told_to_the_caller_and_recorded(phone: FakeTwilio, db) -> None:
    call = phone.call()
    await call.dial("flow=verbal-test")
    await call.press("0")
    failed = await call.connection_ends("busy")

    assert failed.says == ["Sorry, no agent could take your call. Goodbye."]
    row = await db.fetchrow("SELECT status, connected FROM connections WHERE call_sid = $1", call.call_sid)
    assert tuple(row) == ("busy", False)


async def test_a_queue_target_enqueues_the_caller(storage: Storage, http) -> None:
    async with running_service(
        storage, unused_port(), IVR_FLOWS_DIR=str(TEST_FLOWS), AGENT_TARGET="queue:consent-help"
    ) as running:
        call = FakeTwilio(http, running.base_url, AUTH_TOKEN).call()
        await call.dial("flow=verbal-test")
        transfer = await call.press("0")
        enqueue = transfer.root.find("Enqueue")
        assert enqueue.text == "consent-help"
        assert enqueue.get("action") == f"{running.base_url}/twilio/connected?seq=1"
        left = await call.connection_ends("bridged")
    assert left.says == ["Goodbye."]


async def test_without_anyone_to_return_to_the_caller_hears_so(phone: FakeTwilio, db) -> None:
    call = phone.call()
    await call.dial("flow=verbal-test")
    await call.press("1")
    await call.record()
    done = await call.press("1")

    assert done.says == ["Your choice has been recorded.", "Sorry, no agent could take your call. Goodbye."]
    row = await db.fetchrow("SELECT status, connected FROM connections WHERE call_sid = $1", call.call_sid)
    assert tuple(row) == ("no-return-target", False)
