"""What a call's evidence bundle proves: its chained rows, and the tree they are leaves of.

A bundle carries each of the call's evidence rows with its ledger entry; a verifier
rehashes the row into the entry, the entry into its leaf, and the leaf through its
inclusion proof into the root a signed checkpoint states. ``call_entries`` finds the
rows (every evidence table that belongs to a call, and the flow versions it ran);
``tree_of`` reads the leaves of the tree a checkpoint covers, to cut proofs from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from storage.event_receipts import OF_THE_CALL_S_EVENTS
from storage.merkle import Levels, leaf_data, leaf_hash
from storage.postgres import Connection

__all__ = ["ChainedRow", "call_entries", "tree_of"]

# The evidence tables whose rows belong to a call, found by the call's CallSid.
_BY_CALL_SID = (
    "calls",
    "keypresses",
    "notices",
    "consent_events",
    "recordings",
    "recording_statuses",
    "recording_media",
    "connections",
    "requests",
    "pin_checks",
    "call_statuses",
    "call_endings",
    "transfers",
)
# And those reached through another of the call's rows.
_THROUGH = {
    "request_events": "request_id IN (SELECT id FROM requests WHERE call_sid = $1)",
    "transfer_events": "transfer_id IN (SELECT transfer_id FROM transfers WHERE call_sid = $1)",
    # Who was told of the call's decisions and requests, and who said they applied them.
    "event_deliveries": OF_THE_CALL_S_EVENTS,
    "event_applications": OF_THE_CALL_S_EVENTS,
    # The scripts the call ran (an agent's transfer moves it to another flow mid-call).
    "flow_versions": """version IN (SELECT flow_version FROM calls WHERE call_sid = $1
                                  UNION SELECT flow_version FROM keypresses WHERE call_sid = $1
                                  UNION SELECT flow_version FROM consent_events WHERE call_sid = $1)""",
}
_PREFETCH = 10_000


@dataclass(frozen=True)
class ChainedRow:
    """An evidence row as ``to_jsonb`` renders it, with the ledger entry that chained it."""

    seq: int
    kind: str
    ref_id: int
    prev_hash: str
    hash: str
    row: dict[str, Any]


def _lookups() -> str:
    wheres = {table: "call_sid = $1" for table in _BY_CALL_SID} | _THROUGH
    return "\n  UNION ALL ".join(
        f"SELECT '{table}' AS kind, id, to_jsonb(t.*) AS row FROM {table} t WHERE {where}"
        for table, where in wheres.items()
    )


async def call_entries(conn: Connection, call_sid: str) -> list[ChainedRow]:
    """Every chained evidence row of the call, in ledger order (rows never chained are left out:
    ``ivr verify`` reports those)."""
    rows = await conn.fetch(
        f"""
        SELECT l.seq, l.kind, l.ref_id, l.prev_hash, l.hash, r.row
        FROM ({_lookups()}) AS r JOIN ledger l ON l.kind = r.kind AND l.ref_id = r.id
        ORDER BY l.seq
        """,
        call_sid,
    )
    return [ChainedRow(r["seq"], r["kind"], r["ref_id"], r["prev_hash"], r["hash"], r["row"]) for r in rows]


async def tree_of(conn: Connection, size: int) -> Levels:
    """The tree over the ledger's first ``size`` entries (run in a transaction: it reads by cursor).

    Reads one short row per entry: a bundle's proofs cost a pass over the ledger's hashes.
    """
    leaves = []
    query = "SELECT seq, kind, ref_id, hash FROM ledger WHERE seq <= $1 ORDER BY seq"
    async for row in conn.cursor(query, size, prefetch=_PREFETCH):
        leaves.append(leaf_hash(leaf_data(row["seq"], row["kind"], row["ref_id"], row["hash"])))
    return Levels(leaves)
