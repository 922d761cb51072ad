"""Who a lookup, a hold or an export is about: an account number or a phone number, read once.

The CLI, the API and the pages all read a subject the same way (docs/consent-rules.md,
CR-15): an account number the directory knows is that account (even when it looks like
a number); anything else must be a valid phone number, normalised to E.164 (national
numbers read as US). Anything else is refused with a clear error, never answered for
nobody.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ivr.identifiers import ACCOUNT_NUMBER, InvalidIdentifier, normalize_phone
from storage.customers import customer
from storage.postgres import Connection

__all__ = ["Subject", "SubjectType", "resolve_account", "resolve_subject"]


class SubjectType(StrEnum):
    PHONE = "phone"
    ACCOUNT = "account"


@dataclass(frozen=True)
class Subject:
    value: str
    type: SubjectType


async def resolve_subject(conn: Connection, raw: str) -> Subject:
    """A known account, or a valid phone number; ``InvalidIdentifier`` for anything else."""
    text = raw.strip()
    if ACCOUNT_NUMBER.match(text) and await customer(conn, text) is not None:
        return Subject(text, SubjectType.ACCOUNT)
    try:
        return Subject(normalize_phone(text), SubjectType.PHONE)
    except InvalidIdentifier:
        raise InvalidIdentifier(f"{raw!r} is neither a valid phone number nor a known account number") from None


async def resolve_account(conn: Connection, raw: str) -> str:
    """A known account number; ``InvalidIdentifier`` for anything else."""
    text = raw.strip()
    if not ACCOUNT_NUMBER.match(text) or await customer(conn, text) is None:
        raise InvalidIdentifier(f"{raw!r} is not a known account number")
    return text
