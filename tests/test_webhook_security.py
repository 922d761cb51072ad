"""Forged, unsigned and malformed webhooks are refused and leave no trace."""

from __future__ import annotations

from tests.fake_twilio import FakeTwilio


async def rows_for(db, call_sid: str) -> int:
    return await db.fetchval(
        """
        SELECT (SELECT count(*) FROM calls WHERE call_sid = $1)
             + (SELECT count(*) FROM keypresses WHERE call_sid = $1)
             + (SELECT count(*) FROM consent_events WHERE call_sid = $1)
             + (SELECT count(*) FROM call_endings WHERE call_sid = $1)
        """,
        call_sid,
    )


async def test_a_request_signed_with_another_token_gets_403_and_writes_nothing(twilio: FakeTwilio, db) -> None:
    call = twilio.call()
    url = twilio.url("/twilio/voice")
    forged = FakeTwilio(twilio.http, twilio.base_url, "not-the-auth-token")
    answer = await twilio.post(url, call.params("ringing"), signature=forged.sign(url, call.params("ringing")))

    assert answer.status == 403
    assert await rows_for(db, call.call_sid) == 0


async def test_a_request_without_a_signature_gets_403(twilio: FakeTwilio, db) -> None:
    call = twilio.call()
    answer = await twilio.post(twilio.url("/twilio/voice"), call.params("ringing"), signature="")

    assert answer.status == 403
    assert await rows_for(db, call.call_sid) == 0


async def test_a_replayed_keypress_with_changed_digits_gets_403(twilio: FakeTwilio, db) -> None:
    call = twilio.call()
    await call.dial()
    await call.keys("1", "1")
    signed = call.params() | {"Digits": "2", "FinishedOnKey": ""}
    url = twilio.url("/twilio/answer?seq=2")
    signature = twilio.sign(url, signed)
    tampered = signed | {"Digits": "1"}
    answer = await twilio.post(url, tampered, signature=signature)

    assert answer.status == 403
    assert await db.fetchval("SELECT count(*) FROM keypresses WHERE call_sid = $1", call.call_sid) == 2
    assert await db.fetchval("SELECT count(*) FROM consent_events WHERE call_sid = $1", call.call_sid) == 0


async def test_a_signature_over_another_path_gets_403(twilio: FakeTwilio, db) -> None:
    call = twilio.call()
    await call.dial()
    params = call.params() | {"Digits": "1", "FinishedOnKey": ""}
    signature = twilio.sign(twilio.url("/twilio/answer?seq=1"), params)
    answer = await twilio.post(twilio.url("/twilio/answer?seq=0"), params, signature=signature)

    assert answer.status == 403


async def test_a_signed_status_callback_for_a_forged_call_is_refused_unsigned(twilio: FakeTwilio, db) -> None:
    call = twilio.call()
    answer = await twilio.post(twilio.url("/twilio/status"), call.params("completed"), signature="bogus")

    assert answer.status == 403
    assert await rows_for(db, call.call_sid) == 0


async def test_a_signed_request_without_a_call_sid_gets_400(twilio: FakeTwilio) -> None:
    params = {"From": "+14155550100", "To": "+18445550100"}
    answer = await twilio.post(twilio.url("/twilio/voice"), params)

    assert answer.status == 400
    assert "CallSid" in answer.body


async def test_a_body_that_is_not_a_form_gets_400(twilio: FakeTwilio) -> None:
    async with twilio.http.post(
        twilio.url("/twilio/voice"), data=b'{"CallSid": "x"}', headers={"Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 400


async def test_non_phone_keys_in_digits_get_400(twilio: FakeTwilio, db) -> None:
    call = twilio.call()
    await call.dial()
    params = call.params() | {"Digits": "1; DROP TABLE calls", "FinishedOnKey": ""}
    answer = await twilio.post(twilio.url("/twilio/answer?seq=0"), params)

    assert answer.status == 400
    assert await db.fetchval("SELECT count(*) FROM keypresses WHERE call_sid = $1", call.call_sid) == 0
