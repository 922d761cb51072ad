"""Reading the customer directory from CSV: ``account_number,name,phones,pin``.

Phones are separated by ``;`` and normalized to E.164 by ``ivr.identifiers`` (national
numbers are read as US). Every row is checked before anything is stored, and every
problem is reported with its line number; PINs (4 to 8 digits) are hashed here, with
the pepper (``ivr.access.pins``), and never kept.
"""

from __future__ import annotations

import csv
import io
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ivr.access.pins import PinHasher
from ivr.identifiers import ACCOUNT_NUMBER, InvalidIdentifier, normalize_phone
from storage.customers import Customer

__all__ = ["CustomerRow", "parse_customers", "with_hashed_pins"]

REQUIRED_COLUMNS = ("account_number", "name", "phones", "pin")
_PIN = re.compile(r"^\d{4,8}\Z")


@dataclass(frozen=True)
class CustomerRow:
    line: int
    account_number: str
    name: str
    phones: tuple[str, ...]
    pin: str | None  # plain, only between reading the file and hashing it


def _e164(raw: str) -> str | None:
    try:
        return normalize_phone(raw)
    except InvalidIdentifier:
        return None


def parse_customers(text: str) -> tuple[list[CustomerRow], list[str]]:
    """Rows and problems (``line N: …``); rows are only usable when there are no problems."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        return [], [f"line 1: missing column(s) {', '.join(missing)} (need {','.join(REQUIRED_COLUMNS)})"]
    rows: list[CustomerRow] = []
    problems: list[str] = []
    seen: set[str] = set()
    for record in reader:
        line = reader.line_num
        account = (record["account_number"] or "").strip()
        name = (record["name"] or "").strip()
        pin = (record["pin"] or "").strip() or None
        raw_phones = [p.strip() for p in (record["phones"] or "").split(";") if p.strip()]
        phones = [_e164(p) for p in raw_phones]
        if not ACCOUNT_NUMBER.match(account):
            problems.append(f"line {line}: account_number must be 4 to 20 digits")
        elif account in seen:
            problems.append(f"line {line}: account_number {account} appears twice")
        if not name:
            problems.append(f"line {line}: name is empty")
        if pin is not None and not _PIN.match(pin):
            problems.append(f"line {line}: pin must be 4 to 8 digits")  # never echo the PIN
        for raw, phone in zip(raw_phones, phones, strict=True):
            if phone is None:
                problems.append(f"line {line}: {raw!r} is not a valid phone number")
        seen.add(account)
        rows.append(CustomerRow(line, account, name, tuple(p for p in phones if p), pin))
    return rows, problems


def with_hashed_pins(rows: list[CustomerRow], pins: PinHasher) -> list[Customer]:
    """Hash every PIN with the pepper (scrypt is slow by design, so in parallel threads)."""
    with ThreadPoolExecutor() as pool:
        hashes = list(pool.map(lambda row: pins.hash(row.pin) if row.pin else None, rows))
    return [
        Customer(row.account_number, row.name, pin_hash, row.phones) for row, pin_hash in zip(rows, hashes, strict=True)
    ]
