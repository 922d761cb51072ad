"""Agent transfers and their events (chained evidence); the status is the latest event."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from storage.ledger import Chain
from storage.postgres import Connection

__all__ = [
    "FINAL_KINDS",
    "Transfer",
    "active_transfer",
    "add_event",
    "create_transfer",
    "load_transfer",
    "transfer_events",
]

# After one of these, the transfer is over and a new one may start for the call.
FINAL_KINDS = frozenset({"returned", "return_failed", "abandoned", "failed"})


@dataclass(frozen=True)
class Transfer:
    transfer_id: UUID
    call_sid: str
    flow_name: str
    return_to: str
    agent: str
    status: str
    token_id: int  # the API token that started it: who may follow it (with admins)


async def active_transfer(conn: Connection, call_sid: str) -> UUID | None:
    """The call's transfer still under way, if any (call inside the creating transaction)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('transfer:' || $1))", call_sid)
    found: UUID | None = await conn.fetchval(
        """
        SELECT t.transfer_id FROM transfers t
        WHERE t.call_sid = $1
          AND NOT EXISTS (SELECT FROM transfer_events e WHERE e.transfer_id = t.transfer_id AND e.kind = ANY($2))
        ORDER BY t.created_at DESC LIMIT 1
        """,
        call_sid,
        list(FINAL_KINDS),
    )
    return found


async def create_transfer(
    chain: Chain, call_sid: str, flow_name: str, return_to: str, agent: str, token_id: int
) -> UUID:
    row = await chain.insert(
        "transfers",
        "INSERT INTO transfers (call_sid, flow_name, return_to, agent, token_id) VALUES ($1, $2, $3, $4, $5)",
        call_sid,
        flow_name,
        return_to,
        agent,
        token_id,
    )
    assert row is not None
    transfer_id = UUID(row["content"]["transfer_id"])
    await add_event(chain, transfer_id, "requested", {})
    return transfer_id


async def add_event(chain: Chain, transfer_id: UUID, kind: str, detail: dict[str, Any]) -> dict[str, Any]:
    row = await chain.insert(
        "transfer_events",
        "INSERT INTO transfer_events (transfer_id, kind, detail) VALUES ($1, $2, $3)",
        transfer_id,
        kind,
        detail,
    )
    assert row is not None
    return _event(row["content"])


async def load_transfer(conn: Connection, transfer_id: UUID) -> Transfer | None:
    row = await conn.fetchrow(
        """
        SELECT t.*, (SELECT kind FROM transfer_events e WHERE e.transfer_id = t.transfer_id
                     ORDER BY id DESC LIMIT 1) AS status
        FROM transfers t WHERE t.transfer_id = $1
        """,
        transfer_id,
    )
    if row is None:
        return None
    return Transfer(
        row["transfer_id"],
        row["call_sid"],
        row["flow_name"],
        row["return_to"],
        row["agent"],
        row["status"],
        row["token_id"],
    )


async def transfer_events(conn: Connection, transfer_id: UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT to_jsonb(e.*) AS content FROM transfer_events e WHERE transfer_id = $1 ORDER BY id", transfer_id
    )
    return [_event(r["content"]) for r in rows]


def _event(content: dict[str, Any]) -> dict[str, Any]:
    detail = content["detail"]
    return {
        "id": content["id"],
        "kind": content["kind"],
        "at": content["at"],
        "detail": json.loads(detail) if isinstance(detail, str) else detail,
    }
