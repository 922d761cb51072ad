"""Who is on the line: telling a usable caller ID from a withheld one, and reading keyed numbers."""

from __future__ import annotations

import re

__all__ = ["WITHHELD_NUMBERS", "is_withheld", "keyed_number"]

_E164 = re.compile(r"^\+[1-9]\d{6,14}\Z")
# What Twilio puts in From when the network withholds the number: ANONYMOUS,
# RESTRICTED, UNKNOWN, UNAVAILABLE and BLOCKED spelled on a keypad.
WITHHELD_NUMBERS = frozenset({"+266696687", "+7378742833", "+8656696", "+86282452253", "+2562533"})


def is_withheld(number: str) -> bool:
    """True when ``number`` cannot stand for a person: not E.164, or a withheld placeholder."""
    return not _E164.match(number) or number in WITHHELD_NUMBERS


def keyed_number(digits: str) -> str | None:
    """A North American number typed on a keypad (10 digits, or 1 + 10) in E.164, else None."""
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    if len(digits) != 10 or not digits.isdigit() or digits[0] in "01" or digits[3] in "01":
        return None
    number = "+1" + digits
    return None if number in WITHHELD_NUMBERS else number
