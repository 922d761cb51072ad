"""Keeping recordings: the fetch work queue, the media stores, and the chained media record."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import asyncpg

from storage.ledger import Chain
from storage.postgres import Connection

__all__ = [
    "DirectoryStore",
    "Fetch",
    "MediaStore",
    "MediaTampered",
    "PostgresStore",
    "claim_due",
    "enqueue_fetch",
    "enqueue_unannounced",
    "fetch_failed",
    "fetch_status",
    "genuine_media",
    "keep_media",
    "media_store",
    "next_due",
    "pending_fetches",
]


@dataclass(frozen=True)
class Fetch:
    recording_sid: str
    call_sid: str
    account_sid: str
    attempts: int


class MediaStore(Protocol):
    """Where recording bytes live. ``put`` runs inside the transaction that chains them."""

    name: str

    async def put(self, conn: Connection, recording_sid: str, media: bytes) -> None: ...

    async def get(self, conn: Connection, recording_sid: str) -> bytes | None: ...


class PostgresStore:
    name = "postgres"

    async def put(self, conn: Connection, recording_sid: str, media: bytes) -> None:
        await conn.execute(
            "INSERT INTO recording_blobs (recording_sid, media) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            recording_sid,
            media,
        )

    async def get(self, conn: Connection, recording_sid: str) -> bytes | None:
        media: bytes | None = await conn.fetchval(
            "SELECT media FROM recording_blobs WHERE recording_sid = $1", recording_sid
        )
        return media


class DirectoryStore:
    """Files under a directory (e.g. ``IVR_DATA_DIR/recordings``), written once, never replaced."""

    name = "directory"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, recording_sid: str) -> Path:
        return self.root / f"{recording_sid}.wav"

    async def put(self, conn: Connection, recording_sid: str, media: bytes) -> None:
        await asyncio.to_thread(self._write, self._path(recording_sid), media)

    async def get(self, conn: Connection, recording_sid: str) -> bytes | None:
        path = self._path(recording_sid)
        return await asyncio.to_thread(path.read_bytes) if path.exists() else None

    def _write(self, path: Path, media: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            partial = path.with_suffix(".partial")
            partial.write_bytes(media)
            partial.rename(path)


class MediaTampered(Exception):
    """A recording's kept bytes no longer hash to the SHA-256 chained when they were fetched."""

    def __init__(self, recording_sid: str, chained: str, actual: str) -> None:
        super().__init__(f"recording {recording_sid}: its bytes hash to {actual}, not the chained {chained}")
        self.recording_sid, self.chained, self.actual = recording_sid, chained, actual


async def genuine_media(conn: Connection, store: MediaStore, recording_sid: str) -> tuple[bytes, str] | None:
    """A fetched recording's bytes and content type, once they match their chained SHA-256.

    None if it has not been fetched yet; ``MediaTampered`` if the bytes were swapped: they
    are never handed out as the evidence.
    """
    row = await conn.fetchrow(
        "SELECT sha256, content_type FROM recording_media WHERE recording_sid = $1", recording_sid
    )
    media = await store.get(conn, recording_sid) if row is not None else None
    if row is None or media is None:
        return None
    actual = hashlib.sha256(media).hexdigest()
    if actual != row["sha256"]:
        raise MediaTampered(recording_sid, row["sha256"], actual)
    return media, str(row["content_type"])


def media_store(kind: str, data_dir: Path) -> MediaStore:
    """The store RECORDING_STORE names: ``directory`` (under ``data_dir/recordings``) or ``postgres``."""
    return DirectoryStore(data_dir / "recordings") if kind == "directory" else PostgresStore()


async def enqueue_fetch(conn: Connection, recording_sid: str, call_sid: str, account_sid: str) -> None:
    await conn.execute(
        """
        INSERT INTO recording_fetches (recording_sid, call_sid, account_sid) VALUES ($1, $2, $3)
        ON CONFLICT (recording_sid) DO NOTHING
        """,
        recording_sid,
        call_sid,
        account_sid,
    )


async def enqueue_unannounced(conn: Connection, older_than_s: float) -> int:
    """Recordings whose status callback never came: fetch them anyway."""
    added: int = await conn.fetchval(
        """
        WITH added AS (
          INSERT INTO recording_fetches (recording_sid, call_sid, account_sid)
          SELECT r.recording_sid, r.call_sid, c.account_sid
          FROM recordings r JOIN calls c USING (call_sid)
          WHERE r.received_at < now() - make_interval(secs => $1)
            AND NOT EXISTS (SELECT FROM recording_fetches f WHERE f.recording_sid = r.recording_sid)
          ON CONFLICT DO NOTHING
          RETURNING 1
        )
        SELECT count(*) FROM added
        """,
        older_than_s,
    )
    return added


async def claim_due(conn: Connection, limit: int, lease_s: float) -> list[Fetch]:
    """Take due fetches for ``lease_s`` seconds; other processes skip them meanwhile."""
    rows = await conn.fetch(
        """
        UPDATE recording_fetches f
        SET next_attempt_at = now() + make_interval(secs => $2), attempts = f.attempts + 1, updated_at = now()
        WHERE recording_sid IN (
          SELECT recording_sid FROM recording_fetches
          WHERE status = 'pending' AND next_attempt_at <= now()
          ORDER BY next_attempt_at LIMIT $1
          FOR UPDATE SKIP LOCKED
        )
        RETURNING recording_sid, call_sid, account_sid, attempts
        """,
        limit,
        lease_s,
    )
    return [Fetch(r["recording_sid"], r["call_sid"], r["account_sid"], r["attempts"]) for r in rows]


async def keep_media(chain: Chain, store: MediaStore, fetch: Fetch, media: bytes, content_type: str) -> str:
    """Store the bytes, chain their SHA-256 and size, close the fetch. Returns the SHA-256."""
    digest = hashlib.sha256(media).hexdigest()
    await store.put(chain.conn, fetch.recording_sid, media)
    await chain.insert(
        "recording_media",
        """
        INSERT INTO recording_media (recording_sid, call_sid, sha256, size_bytes, content_type, stored_in)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (recording_sid) DO NOTHING
        """,
        fetch.recording_sid,
        fetch.call_sid,
        digest,
        len(media),
        content_type,
        store.name,
    )
    await chain.conn.execute(
        "UPDATE recording_fetches SET status = 'fetched', last_error = NULL, updated_at = now() "
        "WHERE recording_sid = $1",
        fetch.recording_sid,
    )
    return digest


async def fetch_failed(conn: Connection, fetch: Fetch, error: str, retry_at: datetime | None) -> None:
    """Note a failed attempt: try again at ``retry_at``, or give up (status failed) if None."""
    await conn.execute(
        """
        UPDATE recording_fetches
        SET status = CASE WHEN $3::timestamptz IS NULL THEN 'failed' ELSE 'pending' END,
            next_attempt_at = coalesce($3, next_attempt_at), last_error = $2, updated_at = now()
        WHERE recording_sid = $1
        """,
        fetch.recording_sid,
        error[:500],
        retry_at,
    )


async def next_due(conn: Connection) -> datetime | None:
    due: datetime | None = await conn.fetchval(
        "SELECT min(next_attempt_at) FROM recording_fetches WHERE status = 'pending'"
    )
    return due


async def pending_fetches(conn: Connection) -> int:
    count: int = await conn.fetchval("SELECT count(*) FROM recording_fetches WHERE status = 'pending'")
    return count


async def fetch_status(conn: Connection, recording_sid: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """
        SELECT f.status, f.attempts, f.last_error, f.next_attempt_at, m.sha256, m.size_bytes, m.stored_in
        FROM recording_fetches f LEFT JOIN recording_media m USING (recording_sid)
        WHERE f.recording_sid = $1
        """,
        recording_sid,
    )
