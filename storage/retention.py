"""Retention: removing evidence past its period, never under a legal hold, with a tombstone.

The unit removed is a call: its keypresses, notices, decisions, recordings (and their
media), connections and ending, together. Calls that opened a request are kept: the
request follows its own course with staff. A call may go only when every decision made
on it has stopped being in effect (a later decision for the same subject and purpose
replaced it) for longer than its purpose's retention period, when the call itself is
older than the default period, and when neither its caller nor any subject it decided
for is on hold. A hold on an account covers the account and every number it has (the
customer's decisions made from their own phone); a hold on a number covers that
number. Decisions still in effect are never removed.

Each tombstone carries its justification, which ``remove`` reads from the rows it is
about to delete (never from the plan it is handed, so a plan made by hand still leaves
the truth behind): every call's start, caller and ledger entry, every decision's
purpose, subject and time, and the later decision that superseded it. It is chained
with the tombstone, and ``ivr verify`` rechecks each removal against it
(storage/retention_audit.py). Numbers and accounts appear in it only as salted digests.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from storage.ledger import Chain
from storage.postgres import Connection

__all__ = [
    "CALL_TABLES",
    "Removal",
    "active_holds",
    "hold",
    "justification",
    "plan_removal",
    "remove",
    "salted_digest",
]

# The tables whose rows belong to a call, removed children first.
CALL_TABLES = (
    "keypresses",
    "notices",
    "consent_events",
    "recording_statuses",
    "recording_media",
    "recordings",
    "connections",
    "pin_checks",
    "call_statuses",
    "call_endings",
    "calls",
)


@dataclass(frozen=True)
class Removal:
    call_sids: list[str]
    rows: list[tuple[str, int, int, str]]  # kind, ref_id, ledger seq, ledger hash
    recording_sids: list[str]

    @property
    def digest(self) -> str:
        lines = sorted(f"{kind}:{ref_id}:{ledger_hash}" for kind, ref_id, _, ledger_hash in self.rows)
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()


async def hold(chain: Chain, subject: str, action: str, reason: str, actor: str) -> None:
    await chain.insert(
        "hold_events",
        "INSERT INTO hold_events (subject, action, reason, actor) VALUES ($1, $2, $3, $4)",
        subject,
        action,
        reason,
        actor,
    )


async def active_holds(conn: Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT DISTINCT ON (subject) subject, action, reason, actor, at FROM hold_events
        ORDER BY subject, id DESC
        """
    )


async def plan_removal(conn: Connection, periods_days: Mapping[str, int], default_days: int, now: datetime) -> Removal:
    """What a retention run at ``now`` would remove (nothing is changed)."""
    call_sids = [
        r["call_sid"]
        for r in await conn.fetch(
            """
            WITH placed AS (
              SELECT subject FROM (
                SELECT DISTINCT ON (subject) subject, action FROM hold_events ORDER BY subject, id DESC
              ) latest WHERE action = 'place'
            ),
            holds AS (  -- an account's hold covers its numbers too
              SELECT subject FROM placed
              UNION SELECT phone FROM customer_phones WHERE account_number IN (SELECT subject FROM placed)
            ),
            kept AS (
              SELECT e.call_sid FROM consent_events e
              LEFT JOIN LATERAL (
                SELECT min(n.recorded_at) AS at FROM consent_events n
                WHERE n.subject = e.subject AND n.purpose = e.purpose AND (n.recorded_at, n.id) > (e.recorded_at, e.id)
              ) superseded ON true
              WHERE superseded.at IS NULL
                 OR superseded.at + make_interval(days => coalesce(($1::jsonb ->> e.purpose)::int, $2)) > $3
                 OR e.subject IN (SELECT subject FROM holds)
                 OR e.caller_number IN (SELECT subject FROM holds)
              UNION SELECT call_sid FROM requests  -- requests follow their own course with staff
            )
            SELECT c.call_sid FROM calls c
            WHERE c.started_at + make_interval(days => $2) < $3
              AND c.call_sid NOT IN (SELECT call_sid FROM kept)
              AND c.caller_number NOT IN (SELECT subject FROM holds)
            ORDER BY c.call_sid
            """,
            json.dumps(dict(periods_days)),
            default_days,
            now,
        )
    ]
    rows: list[tuple[str, int, int, str]] = []
    for table in CALL_TABLES:
        found = await conn.fetch(
            f"""
            SELECT t.id, l.seq, l.hash FROM {table} t
            JOIN ledger l ON l.kind = '{table}' AND l.ref_id = t.id
            WHERE t.call_sid = ANY($1::text[])
            """,
            call_sids,
        )
        rows.extend((table, r["id"], r["seq"], r["hash"]) for r in found)
    recording_sids = [
        r["recording_sid"]
        for r in await conn.fetch("SELECT recording_sid FROM recordings WHERE call_sid = ANY($1::text[])", call_sids)
    ]
    return Removal(call_sids, rows, recording_sids)


def salted_digest(salt: str, value: str) -> str:
    """How a justification names a number or an account: hex SHA-256 of ``salt + value``.

    Pseudonymous, not anonymous: the salt is kept beside the digests (``ivr verify``
    needs it to match holds and superseding decisions), and phone numbers are few
    enough to try them all, so whoever reads the tombstone can test a number they know.
    It keeps numbers out of plain sight after retention, not out of reach.
    """
    return hashlib.sha256((salt + value).encode()).hexdigest()


async def justification(conn: Connection, call_sids: Sequence[str]) -> dict[str, Any]:
    """What removing ``call_sids`` rests on, read from their rows as they stand (before deletion).

    ``{"salt", "calls": [{"call_sid", "started_at", "caller", "ledger_seq", "decisions":
    [{"seq", "purpose", "subject", "recorded_at", "superseded_by", "superseded_at"}]}]}``:
    ``caller`` and ``subject`` are salted digests, ``seq``/``ledger_seq``/``superseded_by``
    ledger seqs, times ISO 8601. A decision's superseder is the first later decision
    (by recorded_at, then id) for the same subject and purpose, as ``plan_removal`` reads it.
    """
    salt = secrets.token_hex(16)
    calls = await conn.fetch(
        """
        SELECT c.call_sid, c.started_at, c.caller_number, l.seq FROM calls c
        LEFT JOIN ledger l ON l.kind = 'calls' AND l.ref_id = c.id
        WHERE c.call_sid = ANY($1::text[])
        ORDER BY l.seq, c.call_sid
        """,
        list(call_sids),
    )
    decisions = await conn.fetch(
        """
        SELECT e.call_sid, l.seq, e.purpose, e.subject, e.recorded_at,
               s.seq AS superseded_by, s.recorded_at AS superseded_at
        FROM consent_events e
        LEFT JOIN ledger l ON l.kind = 'consent_events' AND l.ref_id = e.id
        LEFT JOIN LATERAL (
          SELECT sl.seq, n.recorded_at FROM consent_events n
          JOIN ledger sl ON sl.kind = 'consent_events' AND sl.ref_id = n.id
          WHERE n.subject = e.subject AND n.purpose = e.purpose AND (n.recorded_at, n.id) > (e.recorded_at, e.id)
          ORDER BY n.recorded_at, n.id LIMIT 1
        ) s ON true
        WHERE e.call_sid = ANY($1::text[])
        ORDER BY l.seq, e.id
        """,
        list(call_sids),
    )
    by_call: dict[str, list[dict[str, Any]]] = {}
    for d in decisions:
        by_call.setdefault(d["call_sid"], []).append(
            {
                "seq": d["seq"],
                "purpose": d["purpose"],
                "subject": salted_digest(salt, d["subject"]),
                "recorded_at": d["recorded_at"].isoformat(),
                "superseded_by": d["superseded_by"],
                "superseded_at": d["superseded_at"].isoformat() if d["superseded_at"] else None,
            }
        )
    return {
        "salt": salt,
        "calls": [
            {
                "call_sid": c["call_sid"],
                "started_at": c["started_at"].isoformat(),
                "caller": salted_digest(salt, c["caller_number"]),
                "ledger_seq": c["seq"],
                "decisions": by_call.get(c["call_sid"], []),
            }
            for c in calls
        ],
    }


async def remove(
    chain: Chain,
    removal: Removal,
    *,
    actor: str,
    reason: str,
    periods: Mapping[str, int],
    default_days: int,
    as_of: datetime,
) -> int:
    """Write the tombstone, then delete; the caller's transaction must be the retention run.

    The tombstone says what the run applied: the time it ran as of, the period per
    purpose and the default period (in ``periods``, so earlier tombstones keep their form),
    and why each call could go (``justification``, read from the rows before they go).
    """
    conn = chain.conn
    await conn.execute("SET LOCAL ivr.retention_run = 'on'")
    why = await justification(conn, removal.call_sids)
    run = await chain.insert(
        "retention_runs",
        """
        INSERT INTO retention_runs (actor, reason, periods, rows_removed, removed_digest, justification)
        VALUES ($1, $2, $3, $4, $5, $6)
        """,
        actor,
        reason,
        {"as_of": as_of.isoformat(), "default_days": default_days, "purposes": dict(periods)},
        len(removal.rows),
        removal.digest,
        why,
    )
    assert run is not None
    await conn.executemany(
        "INSERT INTO removed_rows (kind, ref_id, run_id, ledger_seq, ledger_hash) VALUES ($1, $2, $3, $4, $5)",
        [(kind, ref_id, run["id"], seq, ledger_hash) for kind, ref_id, seq, ledger_hash in removal.rows],
    )
    await conn.execute("DELETE FROM recording_blobs WHERE recording_sid = ANY($1::text[])", removal.recording_sids)
    for table in CALL_TABLES:
        await conn.execute(f"DELETE FROM {table} WHERE call_sid = ANY($1::text[])", removal.call_sids)
    return len(removal.rows)
