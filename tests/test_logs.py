"""Logs never carry a caller's whole phone number."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator

import structlog

from ivr.ops.logs import configure_logging, mask_phone_number


@contextlib.contextmanager
def logged(level: str | None = None) -> Iterator[io.StringIO]:
    """Every line the service logs while the block runs, rendered as it would be."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    root = logging.getLogger()
    handler.setFormatter(root.handlers[0].formatter)
    root.addHandler(handler)
    before = root.level
    if level is not None:
        root.setLevel(level)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(before)


def test_a_number_keeps_only_its_last_two_digits() -> None:
    assert mask_phone_number("+14155550123") == "+*********23"


def test_numbers_are_masked_in_our_events_and_in_library_messages(capsys) -> None:
    suite_handlers = logging.getLogger().handlers[:]
    configure_logging("INFO", "json")  # writes to the captured stderr
    try:
        structlog.get_logger("test").info("call_answered", caller="+14155550123", note="from 4155550199 at 10:15")
        logging.getLogger("aiohttp.access").info("POST /api/subjects/+442071838750/consents 200")
        logging.getLogger("ivr").info("CA0123456789abcdef0123456789abcdef at 2026-11-28T01:07:07")
        err = capsys.readouterr().err
    finally:
        logging.getLogger().handlers[:] = suite_handlers

    assert "+14155550123" not in err and "4155550199" not in err and "442071838750" not in err
    assert "+*********23" in err
    assert "********99" in err
    assert "10:15" in err  # times are not phone numbers
    assert "CA0123456789abcdef0123456789abcdef at 2026-11-28T01:07:07" in err


async def test_a_whole_call_and_an_api_lookup_leave_no_number_pin_or_token_in_the_logs(
    twilio, customer, service, http
) -> None:
    import re as _re

    from tests.conftest import CUSTOMER_PIN
    from tests.helpers import api, token_for

    with logged() as buffer:
        staff = await token_for(service, "staff", "log-scan")
        call = twilio.call(caller=customer.phones[0])
        await call.dial()
        await call.keys("1", "1", CUSTOMER_PIN + "#", "1")
        await call.hang_up()
        await api(http, "GET", f"{service.base_url}/api/subjects/{customer.phones[0]}/consents", staff)
        logging.getLogger("aiohttp.access").info("GET /api/subjects/%s/consents 200", customer.phones[0])
    text = buffer.getvalue()

    assert "call_answered" in text and "decision_recorded" in text  # the scan saw the call
    assert not _re.search(r"\+\d{7,15}", text), "an E.164 number reached the logs"
    assert customer.phones[0][2:] not in text
    assert CUSTOMER_PIN not in text and staff not in text


async def test_every_line_logged_while_answering_a_call_names_the_call(twilio, service) -> None:
    import json as _json

    with logged("DEBUG") as buffer:  # answered webhooks' access lines are DEBUG
        call = twilio.call()
        await call.dial()
        await call.keys("1", "2", "1")
        await call.hang_up()
        other = twilio.call()
        await other.dial()
    lines = [_json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]
    webhook_lines = [
        line for line in lines if "/twilio/" in line.get("path", "") or line["logger"] == "ivr.voice.call_desk"
    ]

    assert len(webhook_lines) >= 7  # five access lines and the desk's own for the first call, then the second
    assert {line["level"] for line in webhook_lines if line["logger"] == "aiohttp.access"} == {"debug"}
    assert {line.get("call_sid") for line in webhook_lines} == {call.call_sid, other.call_sid}
    assert [line.get("call_sid") for line in webhook_lines][-1] == other.call_sid


WRITTEN_FORMS = ["415-555-0199", "(415) 555-0199", "%2B14155550199", "+1 415 555 0199", "415.555.0199"]


async def test_numbers_as_people_write_them_and_tokens_never_reach_the_access_log(service, http) -> None:
    from urllib.parse import quote

    from tests.helpers import token_for

    staff = await token_for(service, "staff", "log-formats")
    with logged() as buffer:
        for written in WRITTEN_FORMS:
            raw = written if "%" in written else quote(written)
            for path in (f"/staff?q={raw}", f"/staff/people/{raw}", f"/api/subjects/{raw}/consents"):
                async with http.get(service.base_url + path, allow_redirects=False):
                    pass
            structlog.get_logger("test").info("lookup", subject=written, note=f"asked for {written}")
        async with http.get(f"{service.base_url}/api/calls?access_token={staff}", allow_redirects=False):
            pass
        async with http.get(f"{service.base_url}/no/such/{staff}", allow_redirects=False):
            pass
        structlog.get_logger("test").info("header", authorization=f"Bearer {staff}")
    text = buffer.getvalue()

    assert "/api/subjects/{phone}/consents" in text and "/staff/people/{subject}" in text  # templates
    for digits in ("4155550199", "415-555", "555-0199", "555 0199", "555.0199", "(415)"):
        assert digits not in text, digits
    assert staff not in text and staff[4:20] not in text
    assert "ivr_[redacted]" in text
