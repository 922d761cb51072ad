"""Keeping recordings: the fetch work queue, the media stores, and the chained media record.

Both stores keep recordings sealed (``storage.sealed_media``); recordings kept before
sealing existed stay readable as they are. What is chained is always the SHA-256 of the
audio itself, so sealing changes nothing an auditor checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import asyncpg

from storage.ledger import Chain
from storage.postgres import Connection
from storage.sealed_media import RecordingKeys, SealBroken, UnknownRecordingKey, seal, unseal

__all__ = [
    "DirectoryStore",
    "Fetch",
    "MediaStore",
    "MediaTampered",
    "PostgresStore",
    "UnknownRecordingKey",
    "claim_due",
    "enqueue_fetch",
    "enqueue_unannounced",
    "fetch_failed",
    "fetch_status",
    "genuine_media",
    "is_audio_type",
    "keep_media",
    "media_store",
    "next_due",
    "pending_fetches",
]


# Only audio is kept: what is kept is played back to staff under its content type.
_AUDIO_TYPE = re.compile(r"^audio/[a-z0-9][a-z0-9.+-]{0,63}\Z")


def is_audio_type(content_type: str) -> bool:
    """``audio/x-wav``, ``audio/mpeg``…: an audio type, plainly written (fit for a header)."""
    return _AUDIO_TYPE.match(content_type) is not None


@dataclass(frozen=True)
class Fetch:
    recording_sid: str
    call_sid: str
    account_sid: str
    attempts: int


class MediaStore(Protocol):
    """Where recording bytes live. ``put`` runs inside the transaction that chains them.

    ``get`` hands back the audio as it was fetched, or raises ``UnknownRecordingKey``
    (sealed with a key not held) or ``SealBroken`` (the sealed bytes were changed).
    """

    name: str

    async def put(self, conn: Connection, recording_sid: str, media: bytes) -> None: ...

    async def get(self, conn: Connection, recording_sid: str) -> bytes | None: ...


class PostgresStore:
    """``recording_blobs``: the sealed bytes and the id of the key that sealed them
    (NULL: a recording kept in clear before sealing existed)."""

    name = "postgres"

    def __init__(self, keys: RecordingKeys) -> None:
        self._keys = keys

    async def put(self, conn: Connection, recording_sid: str, media: bytes) -> None:
        await conn.execute(
            "INSERT INTO recording_blobs (recording_sid, media, key_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            recording_sid,
            await asyncio.to_thread(seal, self._keys, recording_sid, media),  # tens of MB: off the loop
            self._keys.current_id,
        )

    async def get(self, conn: Connection, recording_sid: str) -> bytes | None:
        row = await conn.fetchrow("SELECT media, key_id FROM recording_blobs WHERE recording_sid = $1", recording_sid)
        if row is None:
            return None
        if row["key_id"] is None:
            return bytes(row["media"])
        return await asyncio.to_thread(unseal, self._keys, recording_sid, row["media"], expected_key_id=row["key_id"])


class DirectoryStore:
    """Files under a directory (e.g. ``IVR_DATA_DIR/recordings``), written once, never replaced.

    ``SID.sealed`` (mode 0600, in a 0700 directory); ``SID.wav`` is a recording kept in
    clear before sealing existed, still read.
    """

    name = "directory"

    def __init__(self, root: Path, keys: RecordingKeys) -> None:
        self.root = root
        self._keys = keys

    def sealed_path(self, recording_sid: str) -> Path:
        return self.root / f"{recording_sid}.sealed"

    def _clear_path(self, recording_sid: str) -> Path:
        return self.root / f"{recording_sid}.wav"

    async def put(self, conn: Connection, recording_sid: str, media: bytes) -> None:
        sealed = await asyncio.to_thread(seal, self._keys, recording_sid, media)
        await asyncio.to_thread(self._write, self.sealed_path(recording_sid), sealed)

    async def get(self, conn: Connection, recording_sid: str) -> bytes | None:
        sealed = await asyncio.to_thread(_read_if_there, self.sealed_path(recording_sid))
        if sealed is not None:
            return await asyncio.to_thread(unseal, self._keys, recording_sid, sealed)
        return await asyncio.to_thread(_read_if_there, self._clear_path(recording_sid))

    def secure(self) -> None:
        """The directory made (or kept) 0700: no other user reaches any file in it, old ones included."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.root.chmod(0o700)  # mkdir's mode is cut by the umask, and an older directory was 0755

    def _write(self, path: Path, media: bytes) -> None:
        self.secure()
        if path.exists():
            return
        partial = path.with_suffix(".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # a partial file left by an older version may be 0644
        with os.fdopen(fd, "wb") as out:
            out.write(media)
            out.flush()
            os.fsync(out.fileno())  # chained on commit: the bytes must outlive a crash right after
        partial.rename(path)


def _read_if_there(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


class MediaTampered(Exception):
    """A recording's kept bytes no longer hash to the SHA-256 chained when they were fetched."""

    def __init__(self, recording_sid: str, chained: str, actual: str) -> None:
        super().__init__(f"recording {recording_sid}: its bytes hash to {actual}, not the chained {chained}")
        self.recording_sid, self.chained, self.actual = recording_sid, chained, actual


async def genuine_media(conn: Connection, store: MediaStore, recording_sid: str) -> tuple[bytes, str] | None:
    """A fetched recording's bytes and content type, once they match their chained SHA-256.

    None if it has not been fetched yet; ``MediaTampered`` if the bytes were swapped (or
    their seal broken): they are never handed out as the evidence; ``UnknownRecordingKey``
    if they were sealed with a key this process does not hold.
    """
    row = await conn.fetchrow(
        "SELECT sha256, content_type FROM recording_media WHERE recording_sid = $1", recording_sid
    )
    if row is None:
        return None
    try:
        media = await store.get(conn, recording_sid)
    except SealBroken as exc:
        raise MediaTampered(recording_sid, row["sha256"], exc.stored_sha256) from exc
    if media is None:
        return None
    actual = hashlib.sha256(media).hexdigest()
    if actual != row["sha256"]:
        raise MediaTampered(recording_sid, row["sha256"], actual)
    return media, str(row["content_type"])


def media_store(kind: str, data_dir: Path, keys: RecordingKeys) -> MediaStore:
    """The store RECORDING_STORE names: ``directory`` (under ``data_dir/recordings``) or
    ``postgres``, sealing with ``keys``."""
    if kind != "directory":
        return PostgresStore(keys)
    store = DirectoryStore(data_dir / "recordings", keys)
    # Older files (0644) are out of other users' reach from start-up on, not from the next
    # write; an auditor's ``ivr verify`` may read the directory without owning it.
    with contextlib.suppress(PermissionError):
        store.secure()
    return store


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
    if not is_audio_type(content_type):
        raise ValueError(f"recording {fetch.recording_sid}: {content_type[:80]!r} is not audio, not kept")
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
