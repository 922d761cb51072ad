"""Revocations not yet applied everywhere they were owed: due, and overdue past their honor-by date.

A revocation (a ``consent.revoked`` event) is owed to every subscription that takes that
type and existed when it was made (a subscription gets no history) and is not removed. It
is *due* while any of them has not said it applied it (``event_applications``), and
*overdue* once its honor-by date (``consent_events.honor_by``, business days from receipt)
is before the day asked about. A disabled subscription is still owed: its events wait.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

import asyncpg

from storage.outbox import EventType, event_id
from storage.postgres import Connection

__all__ = ["DueRevocation", "Owed", "count_overdue", "due_revocations", "overdue_revocations"]


@dataclass(frozen=True)
class Owed:
    """What became of one revocation at one subscription it was owed to."""

    subscription_id: int
    subscription_name: str
    delivered_at: datetime | None
    applied_at: datetime | None
    dead_lettered: bool


@dataclass(frozen=True)
class DueRevocation:
    seq: int
    subject: str
    purpose: str
    revoked_at: datetime
    honor_by: date | None
    overdue: bool
    owed: tuple[Owed, ...]

    @property
    def id(self) -> str:
        return event_id(self.seq)

    def as_json(self) -> dict[str, Any]:
        return {
            "event_id": self.id,
            "subject": self.subject,
            "purpose": self.purpose,
            "revoked_at": self.revoked_at,
            "honor_by": self.honor_by,
            "overdue": self.overdue,
            "subscriptions": [
                {
                    "subscription_id": o.subscription_id,
                    "name": o.subscription_name,
                    "delivered_at": o.delivered_at,
                    "applied_at": o.applied_at,
                    "dead_lettered": o.dead_lettered,
                }
                for o in self.owed
            ],
        }


# Every (revocation, subscription owed it) pair, with what became of it there; $1 the type.
_OWED = """
    SELECT e.seq, c.event_id AS decision_id, c.subject, c.purpose, c.recorded_at AS revoked_at, c.honor_by,
           s.id AS subscription_id, s.name AS subscription_name,
           dr.delivered_at, ap.applied_at, coalesce(d.state = 'dead', false) AS dead_lettered
    FROM events e
    JOIN ledger l ON l.seq = e.seq AND l.kind = 'consent_events'
    JOIN consent_events c ON c.id = l.ref_id
    JOIN subscriptions s ON s.removed_at IS NULL AND e.seq > s.starts_after AND $1 = ANY (s.event_types)
    LEFT JOIN deliveries d ON d.subscription_id = s.id AND d.seq = e.seq
    LEFT JOIN event_deliveries dr ON dr.subscription_id = s.id AND dr.seq = e.seq
    LEFT JOIN event_applications ap ON ap.subscription_id = s.id AND ap.seq = e.seq
    WHERE e.type = $1
"""


async def due_revocations(conn: Connection, today: date, limit: int, after: int = 0) -> list[DueRevocation]:
    """Revocations some subscription has not applied yet, oldest first from after event
    ``after`` (a keyset page: the last one's seq is the next page's ``after``); overdue as of ``today``."""
    rows = await conn.fetch(
        f"""
        WITH owed AS ({_OWED}),
        due AS (
          SELECT seq FROM owed WHERE seq > $3 GROUP BY seq HAVING bool_or(applied_at IS NULL) ORDER BY seq LIMIT $2
        )
        SELECT owed.* FROM owed JOIN due USING (seq) ORDER BY seq, subscription_id
        """,
        EventType.CONSENT_REVOKED.value,
        limit,
        after,
    )
    found: dict[int, DueRevocation] = {}
    for r in rows:
        owed = Owed(
            r["subscription_id"], r["subscription_name"], r["delivered_at"], r["applied_at"], r["dead_lettered"]
        )
        seen = found.get(r["seq"])
        if seen is None:
            overdue = r["honor_by"] is not None and r["honor_by"] < today
            found[r["seq"]] = DueRevocation(
                r["seq"], r["subject"], r["purpose"], r["revoked_at"], r["honor_by"], overdue, (owed,)
            )
        else:
            found[r["seq"]] = replace(seen, owed=(*seen.owed, owed))
    return list(found.values())


async def count_overdue(conn: Connection, today: date) -> int:
    """How many revocations are past their honor-by date and not applied by every subscription owed them."""
    n: int = await conn.fetchval(
        f"""
        WITH owed AS ({_OWED})
        SELECT count(*) FROM (
          SELECT seq FROM owed WHERE honor_by < $2 GROUP BY seq HAVING bool_or(applied_at IS NULL)) late
        """,
        EventType.CONSENT_REVOKED.value,
        today,
    )
    return n


async def overdue_revocations(conn: Connection, today: date) -> list[asyncpg.Record]:
    """The overdue revocations (``seq``, ``decision_id``, ``purpose``, ``honor_by``), oldest first: for the alert."""
    return await conn.fetch(
        f"""
        WITH owed AS ({_OWED})
        SELECT seq, decision_id, purpose, honor_by FROM owed WHERE honor_by < $2
        GROUP BY seq, decision_id, purpose, honor_by HAVING bool_or(applied_at IS NULL) ORDER BY seq
        """,
        EventType.CONSENT_REVOKED.value,
        today,
    )
