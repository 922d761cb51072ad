"""What became of an event: where it was delivered, and who said they applied it (chained rows)."""

from __future__ import annotations

from typing import Any

from storage.ledger import EvidenceRow, append
from storage.outbox import event_id
from storage.postgres import Connection

__all__ = ["OF_THE_CALL_S_EVENTS", "applications_of", "deliveries_of", "record_application", "was_sent_to"]

# A receipt's condition for belonging to call $1: its event told of one of the call's
# decisions or requests (for the call's story and its bundle's proofs).
OF_THE_CALL_S_EVENTS = """seq IN (
  SELECT e.seq FROM ledger e JOIN consent_events c ON e.kind = 'consent_events' AND e.ref_id = c.id
  WHERE c.call_sid = $1
  UNION ALL
  SELECT e.seq FROM ledger e JOIN requests r ON e.kind = 'requests' AND e.ref_id = r.id WHERE r.call_sid = $1)"""


async def was_sent_to(conn: Connection, subscription_id: int, seq: int) -> bool:
    """Whether the event is one of the subscription's (handed to it, whatever became of it since)."""
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT FROM deliveries WHERE subscription_id = $1 AND seq = $2)", subscription_id, seq
    )
    return found


async def record_application(
    conn: Connection, subscription_id: int, seq: int, token_id: int, detail: str | None
) -> bool:
    """Chain the receiver's word that it applied the event; False if it had said so already."""
    row = EvidenceRow(
        "event_applications",
        {
            "subscription_id": subscription_id,
            "event_id": event_id(seq),
            "seq": seq,
            "token_id": token_id,
            "detail": detail,
        },
    )
    return await append(conn, [row]) is not None


async def deliveries_of(conn: Connection, seq: int) -> list[dict[str, Any]]:
    """Each subscription the event reached: when, on which attempt, the answer, its ledger entry."""
    return await _chained(conn, "event_deliveries", seq, "delivered_at")


async def applications_of(conn: Connection, seq: int) -> list[dict[str, Any]]:
    return await _chained(conn, "event_applications", seq, "applied_at")


async def _chained(conn: Connection, table: str, seq: int, at: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""
        SELECT t.*, s.name AS subscription_name, l.seq AS ledger_seq, l.hash AS ledger_hash
        FROM {table} t JOIN subscriptions s ON s.id = t.subscription_id
        LEFT JOIN ledger l ON l.kind = '{table}' AND l.ref_id = t.id
        WHERE t.seq = $1 ORDER BY t.{at}, t.id
        """,
        seq,
    )
    return [dict(r) for r in rows]
