"""The customer directory and PIN checks. Functions take a connection; callers own transactions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from storage.ledger import Chain
from storage.postgres import Connection

__all__ = [
    "Customer",
    "account_for_phone",
    "customer",
    "note_pin_check",
    "recent_pin_failures",
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


async def recent_pin_failures(conn: Connection, account_number: str, window_s: int) -> int:
    """Wrong PINs for the account within the window, since its last right one.

    Takes a transaction-scoped lock on the account, so concurrent calls guessing the
    same account's PIN are counted one after another, never past the limit.
    """
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('pin:' || $1))", account_number)
    count: int = await conn.fetchval(
        """
        SELECT count(*) FROM pin_checks
        WHERE account_number = $1 AND NOT ok
          AND checked_at > now() - make_interval(secs => $2)
          AND checked_at > coalesce(
                (SELECT max(checked_at) FROM pin_checks WHERE account_number = $1 AND ok), '-infinity')
        """,
        account_number,
        window_s,
    )
    return count


async def note_pin_check(chain: Chain, account_number: str, call_sid: str, ok: bool) -> None:
    await chain.insert(
        "pin_checks",
        "INSERT INTO pin_checks (account_number, call_sid, ok) VALUES ($1, $2, $3)",
        account_number,
        call_sid,
        ok,
    )
