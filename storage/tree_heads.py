"""The ledger's tree, read from Postgres: its origin, its leaves in order, its head at a size.

A checkpointer reads only the entries after the last size it signed (its frontier
carries the rest), so a checkpoint costs what the ledger grew by, not its length.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from storage.merkle import Frontier, leaf_data, leaf_hash
from storage.postgres import Connection

__all__ = ["LedgerGap", "TreeHead", "extend_frontier", "ledger_origin"]

_PREFETCH = 5_000
# Serialises checkpointers across processes and hosts: one at a time signs a size.
CHECKPOINT_LOCK = 0x1EDC_0001


@dataclass(frozen=True)
class TreeHead:
    """A size of the ledger's tree and its root (hex), as a checkpoint states them."""

    size: int
    root: str


class LedgerGap(Exception):
    """The ledger is not a run of entries 1, 2, 3, …: it cannot be checkpointed as it is."""


async def ledger_origin(conn: Connection) -> str:
    origin = await conn.fetchval("SELECT origin::text FROM ledger_origin ORDER BY created_at LIMIT 1")
    if origin is None:
        raise LookupError("this database has no ledger origin (migration 0015 not applied)")
    return str(origin)


async def _leaves_after(conn: Connection, size: int) -> AsyncIterator[tuple[int, bytes]]:
    query = "SELECT seq, kind, ref_id, hash FROM ledger WHERE seq > $1 ORDER BY seq"
    async for row in conn.cursor(query, size, prefetch=_PREFETCH):
        yield row["seq"], leaf_hash(leaf_data(row["seq"], row["kind"], row["ref_id"], row["hash"]))


async def extend_frontier(conn: Connection, frontier: Frontier) -> Frontier:
    """``frontier`` grown by every entry after it (call inside a transaction: the cursor needs one)."""
    async for seq, leaf in _leaves_after(conn, frontier.size):
        if seq != frontier.size + 1:
            raise LedgerGap(f"the ledger goes from entry #{frontier.size} to #{seq}")
        frontier.append(leaf)
    return frontier
