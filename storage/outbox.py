"""The transactional outbox: the events that decisions, requests and their changes made.

The ledger's ``link_entries`` writes them as it chains the rows they tell of, in the
evidence's own transaction (migrations 0022, 0027); this module only reads them. An event's
data is rendered from its entry and chained row when it is read (``event_data``), off the
commit path. An event's id is its ledger entry, ``evt_<seq>``: the same for every delivery
of it, so receivers de-duplicate on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import asyncpg

from storage.postgres import Connection

__all__ = ["Event", "EventType", "event_by_id", "event_id", "events_after", "seq_of"]

_EVENT_ID = re.compile(r"evt_([1-9][0-9]{0,17})\Z")


class EventType(StrEnum):
    """What happened; a change a receiver could misread gets a new type, never a new meaning."""

    CONSENT_GRANTED = "consent.granted"
    CONSENT_REVOKED = "consent.revoked"
    REQUEST_OPENED = "request.opened"
    REQUEST_STATUS_CHANGED = "request.status_changed"
    # The 30-day CPNI opt-out window ran out after the number's notice, no decision reaching
    # it: noted by a periodic scan (storage/deemed_approvals.py, migration 0025).
    CPNI_DEEMED_GRANTED = "cpni.deemed_granted"


@dataclass(frozen=True)
class Event:
    seq: int
    type: str
    ordering_key: str
    occurred_at: datetime
    data: dict[str, Any]

    @property
    def id(self) -> str:
        return event_id(self.seq)


def event_id(seq: int) -> str:
    return f"evt_{seq}"


def seq_of(text: str) -> int | None:
    """``evt_123`` -> 123; anything else (or a number no bigint holds) -> None."""
    match = _EVENT_ID.match(text)
    return int(match[1]) if match else None


async def event_by_id(conn: Connection, seq: int) -> Event | None:
    row = await conn.fetchrow(f"{_SELECT} WHERE seq = $1", seq)
    return _event(row) if row else None


async def events_after(
    conn: Connection,
    after_seq: int,
    limit: int,
    subject: str | None = None,
    types: list[str] | None = None,
) -> list[Event]:
    """Events in ledger order after ``after_seq`` (those reaching ``subject``, of ``types``, if given).

    The seq is a stable keyset cursor: events are only ever added, with a higher seq.
    """
    rows = await conn.fetch(
        f"""
        {_SELECT}
        WHERE seq > $1 AND ($3::text IS NULL OR ordering_key = $3 OR event_data(seq) -> 'reaches' ? $3)
          AND ($4::text[] IS NULL OR type = ANY ($4::text[]))
        ORDER BY seq LIMIT $2
        """,
        after_seq,
        limit,
        subject,
        types,
    )
    return [_event(r) for r in rows]


_SELECT = "SELECT seq, type, ordering_key, occurred_at, event_data(seq) AS data FROM events"


def _event(row: asyncpg.Record) -> Event:
    return Event(row["seq"], row["type"], row["ordering_key"], row["occurred_at"], row["data"])
