"""The customer directory and PIN checks. Functions take a connection; callers own transactions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from flows.pin_lockout import PinEntry
from storage.ledger import Chain
from storage.postgres import Connection

__all__ = [
    "Customer",
    "PinState",
    "account_for_phone",
    "customer",
    "note_pin_check",
    "note_pin_unlock",
    "pin_state",
    "upgrade_pin_hash",
    "upsert_customer",
]


@dataclass(frozen=True)
class Customer:
    account_number: str
    name: str
    pin_hash: str | None
    phones: tuple[str, ...]


async def upsert_customer(conn: Connection, customer: Customer) -> None:
    """Create or replace a customer and their phone numbers."""
    await conn.execute(
        """
        INSERT INTO customers (account_number, name, pin_hash) VALUES ($1, $2, $3)
        ON CONFLICT (account_number) DO UPDATE
          SET name = EXCLUDED.name, pin_hash = EXCLUDED.pin_hash, updated_at = now()
        """,
        customer.account_number,
        customer.name,
        customer.pin_hash,
    )
    await conn.execute("DELETE FROM customer_phones WHERE account_number = $1", customer.account_number)
    await conn.executemany(
        "INSERT INTO customer_phones (phone, account_number) VALUES ($1, $2)",
        [(phone, customer.account_number) for phone in customer.phones],
    )


async def account_for_phone(conn: Connection, phone: str) -> str | None:
    """The account using ``phone``, only if exactly one does (a shared line identifies no one)."""
    accounts: Sequence[asyncpg.Record] = await conn.fetch(
        "SELECT account_number FROM customer_phones WHERE phone = $1 LIMIT 2", phone
    )
    return accounts[0]["account_number"] if len(accounts) == 1 else None


async def customer(conn: Connection, account_number: str) -> Customer | None:
    row = await conn.fetchrow(
        """
        SELECT c.account_number, c.name, c.pin_hash,
               coalesce(array_agg(p.phone ORDER BY p.phone) FILTER (WHERE p.phone IS NOT NULL), '{}') AS phones
        FROM customers c LEFT JOIN customer_phones p USING (account_number)
        WHERE c.account_number = $1
        GROUP BY c.account_number
        """,
        account_number,
    )
    if row is None:
        return None
    return Customer(row["account_number"], row["name"], row["pin_hash"], tuple(row["phones"]))


@dataclass(frozen=True)
class PinState:
    """An account's PIN entry as its checks leave it, at the database's ``now``."""

    entry: PinEntry
    now: datetime
    checked_before: bool  # any PIN check or unlock at all (an account number ever tried)


# Wrong PINs are replayed in pages, and a hard lock ends the replay: the refused tries
# that pile up on a hard-locked account (as many as anyone cares to call in) are never
# read, and before it there are at most 20 guesses and the tries refused between them.
_REPLAY_PAGE = 200


async def pin_state(conn: Connection, account_number: str) -> PinState:
    """The account's wrong PINs since its last right PIN or staff unlock, replayed.

    Takes a transaction-scoped lock on the account first, so concurrent calls guessing
    the same account's PIN are counted one after another, never past a limit; call it
    in the transaction that notes the check.
    """
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('pin:' || $1))", account_number)
    head = await conn.fetchrow(
        """
        SELECT now() AS now,
               greatest((SELECT max(checked_at) FROM pin_checks WHERE account_number = $1 AND ok),
                        (SELECT max(unlocked_at) FROM pin_unlocks WHERE account_number = $1)) AS since,
               EXISTS (SELECT FROM pin_checks WHERE account_number = $1)
                 OR EXISTS (SELECT FROM pin_unlocks WHERE account_number = $1) AS checked_before
        """,
        account_number,
    )
    assert head is not None
    entry = PinEntry()
    failures = conn.cursor(
        """
        SELECT checked_at FROM pin_checks
        WHERE account_number = $1 AND NOT ok AND checked_at > coalesce($2, '-infinity'::timestamptz)
        ORDER BY checked_at, id
        """,
        account_number,
        head["since"],
        prefetch=_REPLAY_PAGE,
    )
    async for row in failures:
        entry = entry.after(row["checked_at"])
        if entry.hard_locked:
            break  # every later one was refused unchecked
    return PinState(entry, head["now"], head["checked_before"])


async def note_pin_check(chain: Chain, account_number: str, call_sid: str, ok: bool) -> None:
    await chain.insert(
        "pin_checks",
        "INSERT INTO pin_checks (account_number, call_sid, ok) VALUES ($1, $2, $3)",
        account_number,
        call_sid,
        ok,
    )


async def note_pin_unlock(chain: Chain, account_number: str, actor: str, reason: str) -> None:
    """Staff restored PIN entry: the account's wrong PINs before now no longer count."""
    await chain.insert(
        "pin_unlocks",
        "INSERT INTO pin_unlocks (account_number, actor, reason) VALUES ($1, $2, $3)",
        account_number,
        actor,
        reason,
    )


async def upgrade_pin_hash(conn: Connection, account_number: str, old_hash: str, new_hash: str) -> bool:
    """Replace a PIN hash from before the pepper with a peppered one (migration 0021 says
    when the database allows it); whether it was replaced."""
    replaced: bool = await conn.fetchval("SELECT upgrade_pin_hash($1, $2, $3)", account_number, old_hash, new_hash)
    return replaced
