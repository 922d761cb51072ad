"""Signed but implausible input (issue 16, finding 12): refused, or kept without the part
that is not plausible; never an ending retried forever."""

from __future__ import annotations

from ivr.voice.context import CALL_DESK
from storage.evidence import CallEnding
from tests.fake_twilio import FakeTwilio


async def test_an_absurd_call_duration_keeps_the_ending_without_it(twilio: FakeTwilio, db) -> None:
    call = twilio.call()
    await call.dial()
    params = call.params("completed") | {"CallDuration": "99999999999", "Timestamp": "x" * 500}
    answer = await twilio.post(twilio.url("/twilio/status"), params)

    assert answer.status == 200
    row = await db.fetchrow("SELECT duration_s, twilio_timestamp FROM call_endings WHERE call_sid = $1", call.call_sid)
    assert (row["duration_s"], row["twilio_timestamp"]) == (None, None)


async def test_a_call_sid_with_a_trailing_newline_gets_400_and_stores_nothing(twilio: FakeTwilio, db) -> None:
    call = twilio.call()
    answer = await twilio.post(twilio.url("/twilio/voice"), call.params() | {"CallSid": call.call_sid + "\n"})

    assert answer.status == 400
    assert await db.fetchval("SELECT count(*) FROM calls WHERE call_sid LIKE $1", call.call_sid + "%") == 0


async def test_digits_with_a_trailing_newline_or_unicode_digits_get_400(twilio: FakeTwilio, db) -> None:
    call = twilio.call()
    await call.dial()
    for digits in ("1\n", "١", "²"):
        answer = await twilio.post(twilio.url("/twilio/answer?seq=0"), call.params() | {"Digits": digits})
        assert answer.status == 400, digits
    assert await db.fetchval("SELECT count(*) FROM keypresses WHERE call_sid = $1", call.call_sid) == 0
    unicode_seq = await twilio.post(twilio.url("/twilio/answer?seq=%C2%B2"), call.params() | {"Digits": "1"})
    assert unicode_seq.status == 400


async def test_a_deferred_ending_no_column_can_hold_is_dropped_not_retried_forever(service, twilio, db) -> None:
    call = twilio.call()
    await call.dial()
    desk = service.app[CALL_DESK]
    impossible = CallEnding(
        call_sid=call.call_sid, status="completed", duration_s=99_999_999_999, twilio_timestamp=None
    )
    await desk._deferred.add(impossible)

    await desk.store_deferred_endings()

    assert await desk._deferred.waiting() == 0
    assert await db.fetchval("SELECT count(*) FROM call_endings WHERE call_sid = $1", call.call_sid) == 0
