"""The hash chain over every evidence row: appending, and the canonical form it hashes.

Canonical form of a row: the row as Postgres renders it with ``to_jsonb`` (the session
in UTC, so timestamps read ``2026-11-28T01:07:07.123456+00:00``; numbers as Postgres
normalises them), serialised with keys sorted, ``,`` and ``:`` separators and no
escaping of non-ASCII. Entry n's hash is SHA-256 over that text followed by entry
n-1's hash (64 zeros before the first), in lowercase hex; ``ledger_append`` (SQL) does
the hashing and linking under the ledger's lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg

__all__ = ["GENESIS", "Chain", "canonical_json", "chained", "entry_hash"]

GENESIS = "0" * 64


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

    conn: asyncpg.Connection
    _kinds: list[str] = field(default_factory=list)
    _ids: list[int] = field(default_factory=list)
    _contents: list[str] = field(default_factory=list)

    async def insert(self, table: str, statement: str, *args: Any) -> asyncpg.Record | None:
        row = await self.conn.fetchrow(f"{statement} RETURNING id, to_jsonb({table}.*) AS content", *args)
        if row is not None:
            self._kinds.append(table)
            self._ids.append(row["id"])
            self._contents.append(canonical_json(row["content"]))
        return row

    async def seal(self) -> str | None:
        """Chain what was inserted; the new head hash (None if nothing was new)."""
        if not self._kinds:
            return None
        head: str = await self.conn.fetchval(
            "SELECT ledger_append($1::text[], $2::bigint[], $3::text[])", self._kinds, self._ids, self._contents
        )
        self._kinds, self._ids, self._contents = [], [], []
        return head


@contextlib.asynccontextmanager
async def chained(conn: asyncpg.Connection) -> AsyncIterator[Chain]:
    """A transaction whose evidence is chained (sealed) just before it commits."""
    async with conn.transaction():
        chain = Chain(conn)
        yield chain
        await chain.seal()
