"""Logs never carry a caller's whole phone number."""

from __future__ import annotations

import logging

import structlog

from ivr.logs import configure_logging, mask_phone_number


def test_a_number_keeps_only_its_last_two_digits() -> None:
    assert mask_phone_number("+14155550123") == "+*********23"


def test_numbers_are_masked_in_our_events_and_in_library_messages(capsys) -> None:
    configure_logging("INFO", "json")
    try:
        structlog.get_logger("test").info("call_answered", caller="+14155550123", note="from 4155550199 at 10:15")
        logging.getLogger("aiohttp.access").info("POST /api/subjects/+442071838750/consents 200")
        logging.getLogger("ivr").info("CA0123456789abcdef0123456789abcdef at 2026-11-28T01:07:07")
        err = capsys.readouterr().err
    finally:
        logging.getLogger().handlers[:] = []
        structlog.reset_defaults()

    assert "+14155550123" not in err and "4155550199" not in err and "442071838750" not in err
    assert "+*********23" in err
    assert "********99" in err
    assert "10:15" in err  # times are not phone numbers
    assert "CA0123456789abcdef0123456789abcdef at 2026-11-28T01:07:07" in err
