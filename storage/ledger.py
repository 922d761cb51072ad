"""The hash chain over every evidence row: appending, and the canonical form it hashes.

Canonical form of a row: the row as Postgres renders it with ``to_jsonb`` (the session
in UTC, so timestamps read ``2026-11-28T01:07:07.123456+00:00``; numbers as Postgres
normalises them), serialised with keys sorted, ``,`` and ``:`` separators and no
escaping of non-ASCII. Entry n's hash is SHA-256 over that text followed by entry
n-1's hash (64 zeros before the first), in lowercase hex; ``ledger_append`` (SQL) does
the hashing and linking under the ledger's lock.

Two ways in. ``append`` sends rows as JSON and ``append_evidence`` (SQL, migration 0011)
inserts, renders and chains them in one statement: the webhook path, one round trip.
``chained`` opens a transaction for writers that need what an insert returns (an id)
or other statements beside the evidence; it chains their rows when it commits.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from storage.postgres import Connection

__all__ = ["GENESIS", "Chain", "EvidenceRow", "append", "canonical_json", "chained", "entry_hash"]

GENESIS = "0" * 64
_APPEND = "SELECT append_evidence($1::text[], $2::jsonb[])"


@dataclass(frozen=True)
class EvidenceRow:
    """One row for an evidence table: column → JSON-ready value (the rest take defaults)."""

    table: str
    values: Mapping[str, Any]


async def append(conn: Connection, rows: list[EvidenceRow]) -> str | None:
    """Insert and chain ``rows`` in one statement; the new head hash (None if none was new).

    Outside a transaction the statement commits by itself, all or nothing.
    """
    if not rows:
        return None
    head: str | None = await conn.fetchval(_APPEND, [r.table for r in rows], [dict(r.values) for r in rows])
    return head


def canonical_json(content: Mapping[str, Any]) -> str:
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(canonical: str, prev_hash: str) -> str:
    return hashlib.sha256((canonical + prev_hash).encode("utf-8")).hexdigest()


@dataclass
class Chain:
    """Evidence inserted in one transaction, chained at its end in one call.

    ``insert`` runs an ``INSERT … ON CONFLICT DO NOTHING`` and notes the new row;
    a row that already existed (a retried webhook) was chained when it was first
    written. ``seal`` appends the noted rows to the ledger: call it last, just before
    the commit, so the ledger lock is held as briefly as possible.
    """

    conn: Connection
    _rows: list[EvidenceRow] = field(default_factory=list)
    _kinds: list[str] = field(default_factory=list)
    _ids: list[int] = field(default_factory=list)

    async def insert(self, table: str, statement: str, *args: Any) -> asyncpg.Record | None:
        row = await self.conn.fetchrow(f"{statement} RETURNING id, to_jsonb({table}.*) AS content", *args)
        if row is not None:
            self._kinds.append(table)
            self._ids.append(row["id"])
        return row

    def add(self, rows: list[EvidenceRow]) -> None:
        """Rows to insert and chain at the seal, in one statement with the rest."""
        self._rows.extend(rows)

    async def seal(self) -> str | None:
        """Chain what was inserted or added; the new head hash (None if nothing was new)."""
        head = await append(self.conn, self._rows)
        self._rows = []
        if self._kinds:
            # The database renders what it chains from the rows themselves (migration 0016).
            head = await self.conn.fetchval("SELECT ledger_append($1::text[], $2::bigint[])", self._kinds, self._ids)
            self._kinds, self._ids = [], []
        return head


@contextlib.asynccontextmanager
async def chained(conn: Connection) -> AsyncIterator[Chain]:
    """A transaction whose evidence is chained (sealed) just before it commits."""
    async with conn.transaction():
        chain = Chain(conn)
        yield chain
        await chain.seal()
