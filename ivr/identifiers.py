"""Identifier formats, written once: Twilio's SIDs, E.164 numbers, account numbers.

Every door checks what it is given against these (a webhook's CallSid, an API path, a
page's search box, a CLI argument), so a number typed as ``(212) 653-3562`` and one
sent as ``+12126533562`` are the same subject everywhere.
"""

from __future__ import annotations

import re

import phonenumbers

__all__ = [
    "ACCOUNT_NUMBER",
    "ACCOUNT_SID",
    "CALL_SID",
    "DEFAULT_REGION",
    "E164",
    "RECORDING_SID",
    "InvalidIdentifier",
    "is_call_sid",
    "normalize_phone",
]

# Twilio SIDs: a two-letter kind and 32 hex digits.
CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}\Z")
RECORDING_SID = re.compile(r"^RE[0-9a-fA-F]{32}\Z")
ACCOUNT_SID = re.compile(r"^AC[0-9a-f]{32}\Z")  # Twilio writes them in lowercase
E164 = re.compile(r"^\+[1-9]\d{6,14}\Z")
# The customer directory's account numbers: digits only, as billing systems print them.
ACCOUNT_NUMBER = re.compile(r"^\d{4,20}\Z")
# A number written without a country code is read as North American: the business's own.
DEFAULT_REGION = "US"


class InvalidIdentifier(ValueError):
    """Something given as an identifier is not one; ``message`` says what was expected."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def is_call_sid(text: str) -> bool:
    return CALL_SID.match(text) is not None


def normalize_phone(raw: str) -> str:
    """The E.164 form of a phone number as people write it (national numbers read as US).

    Raises ``InvalidIdentifier`` for anything that is not a valid number: a lookup for a
    mistyped number must fail loudly, never answer for nobody.
    """
    try:
        number = phonenumbers.parse(raw, DEFAULT_REGION)
    except phonenumbers.NumberParseException as exc:
        raise InvalidIdentifier(f"{raw!r} is not a phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidIdentifier(f"{raw!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
