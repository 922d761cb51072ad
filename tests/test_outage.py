"""Commit before confirm: when Postgres cannot store the decision, the caller is told so."""

from __future__ import annotations

import asyncio

import asyncpg

from flows.loader import builtin_flows
from ivr.voice.context import CALL_DESK
from tests.conftest import Storage
from tests.fake_twilio import FakeTwilio

SYSTEM_ERROR = builtin_flows()["consent-line"].messages["system_error"].text("en")


async def test_a_stuck_ledger_never_yields_a_false_recorded(storage: Storage, twilio: FakeTwilio, db) -> None:
    call = twilio.call()
    await call.dial()
    await call.keys("1", "2")

    blocker = await asyncpg.connect(storage.database_url)
    try:
        async with blocker.transaction():
            # Inserts into the ledger now wait until the service's statement timeout.
            await blocker.execute("LOCK TABLE consent_events IN EXCLUSIVE MODE")
            answer = await call.press("1")
    finally:
        await blocker.close()

    assert answer.status == 200
    assert answer.says == [SYSTEM_ERROR]
    assert "recorded" not in answer.heard.replace("could not record", "")
    assert answer.hangs_up
    assert await db.fetchval("SELECT count(*) FROM consent_events WHERE call_sid = $1", call.call_sid) == 0
    # Nothing of the failed statement was stored (the first two keypresses went in with the
    # CPNI notice, heard once the caller answered after it); the last stayed in the session
    # and goes in with the call's ending.
    assert await db.fetchval("SELECT count(*) FROM keypresses WHERE call_sid = $1", call.call_sid) == 2
    await call.hang_up()
    assert await db.fetchval("SELECT count(*) FROM keypresses WHERE call_sid = $1", call.call_sid) == 3
    assert await db.fetchval("SELECT count(*) FROM consent_events WHERE call_sid = $1", call.call_sid) == 0


async def test_when_postgres_is_unreachable_the_caller_hears_nothing_was_recorded(service, twilio: FakeTwilio) -> None:
    call = twilio.call()
    await call.dial()
    await call.keys("1", "2")
    await asyncio.wait_for(service.pool.close(), 5)  # every connection gone, none to be had

    answer = await call.press("1")

    assert answer.status == 200
    assert answer.says == [SYSTEM_ERROR]
    assert answer.hangs_up


async def test_an_ending_reported_while_postgres_is_stuck_is_stored_once_it_answers(
    storage: Storage, service, twilio: FakeTwilio, db
) -> None:
    call = twilio.call()
    await call.dial()
    await call.keys("2")  # a menu keypress, still in the call's session

    blocker = await asyncpg.connect(storage.database_url)
    try:
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE call_endings IN EXCLUSIVE MODE")
            ack = await call.hang_up()  # its statement times out behind the lock
    finally:
        await blocker.close()

    assert ack.status == 200
    assert await db.fetchval("SELECT count(*) FROM call_endings WHERE call_sid = $1", call.call_sid) == 0
    ending = None
    for _ in range(100):  # the service's own loop may be storing it at this very moment
        await service.app[CALL_DESK].store_deferred_endings()  # what it does every few seconds
        ending = await db.fetchrow("SELECT * FROM call_endings WHERE call_sid = $1", call.call_sid)
        if ending is not None:
            break
        await asyncio.sleep(0.1)

    assert ending is not None
    assert (ending["status"], ending["abandoned_at_step"]) == ("completed", "telemarketing_choice")
    assert await db.fetchval("SELECT count(*) FROM keypresses WHERE call_sid = $1", call.call_sid) == 1
