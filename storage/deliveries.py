"""Deliveries of events to subscriptions: handed out, leased, finished — by any number of workers.

Fan-out turns each subscription's new events into deliveries (in ledger order). A worker
claims due deliveries with ``FOR UPDATE SKIP LOCKED`` and leases them (the claim commits at
once: no lock is held while it sends); a delivery waits while an earlier one for the same
subject is still pending for that subscription, so each subject's events arrive in order.
A worker that dies mid-send loses nothing: its lease runs out and another takes the delivery
up. Each outcome is written only by the holder of the lease (the attempt number fences a
worker whose lease ran out), and a success is chained as evidence (``event_deliveries``)
in the same transaction that marks it delivered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from storage.ledger import EvidenceRow, append
from storage.outbox import event_id
from storage.postgres import Connection

__all__ = [
    "Claimed",
    "DeadLetter",
    "claim",
    "dead_letters",
    "fan_out",
    "record_failure",
    "record_gone",
    "record_success",
    "requeue_dead",
]

# Events handed to one subscription's deliveries per round: a burst is spread over rounds.
FAN_OUT_BATCH = 500


@dataclass(frozen=True)
class Claimed:
    """A delivery leased to this worker for one attempt."""

    id: int
    subscription_id: int
    seq: int
    attempt: int


@dataclass(frozen=True)
class DeadLetter:
    subscription_id: int
    event_id: str
    type: str
    attempts: int
    last_status: int | None
    last_error: str | None
    dead_at: datetime


async def fan_out(conn: Connection, batch: int = FAN_OUT_BATCH) -> int:
    """Hand each live subscription's new events to deliveries; how many were made.

    A subscription's cursor is locked while it is advanced, and skipped by a worker that
    finds it locked: two workers never hand out one event twice (nor would it count twice:
    a delivery is unique per subscription and event).
    """
    made = 0
    async with conn.transaction():
        cursors = await conn.fetch(
            """
            SELECT c.subscription_id, c.fanned_through, s.event_types
            FROM subscription_cursors c JOIN subscriptions s ON s.id = c.subscription_id
            WHERE s.removed_at IS NULL AND EXISTS (SELECT FROM events e WHERE e.seq > c.fanned_through)
            FOR UPDATE OF c SKIP LOCKED
            """
        )
        for cursor in cursors:
            row = await conn.fetchrow(
                """
                WITH batch AS (
                  SELECT seq, type, ordering_key FROM events WHERE seq > $2 ORDER BY seq LIMIT $4
                ), made AS (
                  INSERT INTO deliveries (subscription_id, seq, ordering_key)
                  SELECT $1, seq, ordering_key FROM batch WHERE type = ANY ($3::text[])
                  ON CONFLICT DO NOTHING RETURNING 1
                )
                SELECT (SELECT max(seq) FROM batch) AS through, (SELECT count(*) FROM made) AS made
                """,
                cursor["subscription_id"],
                cursor["fanned_through"],
                cursor["event_types"],
                batch,
            )
            assert row is not None and row["through"] is not None  # the cursor was behind the events
            await conn.execute(
                "UPDATE subscription_cursors SET fanned_through = $2 WHERE subscription_id = $1",
                cursor["subscription_id"],
                row["through"],
            )
            made += row["made"]
    return made


async def claim(conn: Connection, limit: int, lease: timedelta) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries of live subscriptions, each the earliest pending for its subject."""
    rows = await conn.fetch(
        """
        WITH ready AS (
          SELECT d.id FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id
          WHERE d.state = 'pending' AND d.next_attempt_at <= now()
            AND (d.leased_until IS NULL OR d.leased_until < now())
            AND s.disabled_at IS NULL AND s.removed_at IS NULL
            AND NOT EXISTS (
              SELECT FROM deliveries p
              WHERE p.subscription_id = d.subscription_id AND p.ordering_key = d.ordering_key
                AND p.state = 'pending' AND p.seq < d.seq)
          ORDER BY d.next_attempt_at, d.id
          LIMIT $1
          FOR UPDATE OF d SKIP LOCKED
        )
        UPDATE deliveries d SET attempts = d.attempts + 1, leased_until = now() + $2::interval
        FROM ready WHERE d.id = ready.id
        RETURNING d.id, d.subscription_id, d.seq, d.attempts
        """,
        limit,
        lease,
    )
    return [Claimed(r["id"], r["subscription_id"], r["seq"], r["attempts"]) for r in rows]


_HOLDER = "id = $1 AND attempts = $2 AND state = 'pending'"


async def record_success(conn: Connection, claimed: Claimed, status: int, url: str) -> bool:
    """Delivered: marked so, and the receipt chained (once per subscription and event)."""
    receipt = EvidenceRow(
        "event_deliveries",
        {
            "subscription_id": claimed.subscription_id,
            "event_id": event_id(claimed.seq),
            "seq": claimed.seq,
            "attempt": claimed.attempt,
            "http_status": status,
            "url": url,
        },
    )
    async with conn.transaction():
        marked = await conn.fetchval(
            f"""
            UPDATE deliveries SET state = 'delivered', finished_at = now(), leased_until = NULL,
              last_status = $3, last_error = NULL
            WHERE {_HOLDER} RETURNING true
            """,
            claimed.id,
            claimed.attempt,
            status,
        )
        # Chained last: the ledger's lock is held only for this statement and the commit.
        await append(conn, [receipt])
    return bool(marked)


async def record_failure(
    conn: Connection, claimed: Claimed, status: int | None, error: str, retry_in: timedelta | None
) -> None:
    """A failed attempt: tried again after ``retry_in``, or (None) given up: dead-lettered."""
    if retry_in is None:
        await conn.execute(
            f"""
            UPDATE deliveries SET state = 'dead', finished_at = now(), leased_until = NULL,
              last_status = $3, last_error = $4
            WHERE {_HOLDER}
            """,
            claimed.id,
            claimed.attempt,
            status,
            error[:500],
        )
        return
    await conn.execute(
        f"""
        UPDATE deliveries SET next_attempt_at = now() + $5::interval, leased_until = NULL,
          last_status = $3, last_error = $4
        WHERE {_HOLDER}
        """,
        claimed.id,
        claimed.attempt,
        status,
        error[:500],
        retry_in,
    )


async def record_gone(conn: Connection, claimed: Claimed, reason: str) -> None:
    """The endpoint answered 410: the subscription is disabled, this delivery waits for it.

    The attempt is not counted, so re-enabling the subscription sends it again with its
    full schedule ahead of it.
    """
    async with conn.transaction():
        await conn.execute(
            f"""
            UPDATE deliveries SET attempts = attempts - 1, leased_until = NULL, last_status = 410, last_error = $3
            WHERE {_HOLDER}
            """,
            claimed.id,
            claimed.attempt,
            reason,
        )
        await conn.fetchval("SELECT set_subscription_disabled($1, $2)", claimed.subscription_id, reason)


async def dead_letters(conn: Connection, subscription_id: int | None, limit: int) -> list[DeadLetter]:
    rows = await conn.fetch(
        """
        SELECT d.*, e.type FROM deliveries d JOIN events e ON e.seq = d.seq
        WHERE d.state = 'dead' AND ($1::bigint IS NULL OR d.subscription_id = $1)
        ORDER BY d.finished_at DESC, d.id DESC LIMIT $2
        """,
        subscription_id,
        limit,
    )
    return [_dead(r) for r in rows]


async def requeue_dead(conn: Connection, subscription_id: int) -> int:
    """Give a subscription's dead letters a new schedule (after its endpoint is fixed)."""
    status: str = await conn.execute(
        """
        UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = now(), finished_at = NULL
        WHERE subscription_id = $1 AND state = 'dead'
        """,
        subscription_id,
    )
    return int(status.rpartition(" ")[2])


def _dead(row: asyncpg.Record) -> DeadLetter:
    return DeadLetter(
        row["subscription_id"],
        event_id(row["seq"]),
        row["type"],
        row["attempts"],
        row["last_status"],
        row["last_error"],
        row["finished_at"],
    )
