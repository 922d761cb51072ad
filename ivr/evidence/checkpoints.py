"""Signed checkpoints of the ledger's tree, kept outside the database.

A checkpoint states the tree's size and root at a time, for one ledger (its origin),
signed with the service's Ed25519 key (``cryptography``). It is written as a file of its
own to an append-only directory — created exclusively, never overwritten, read-only —
which the database's owner cannot rewrite; ship that directory to write-once storage
(docs/verifying-evidence.md). ``ivr verify`` checks the ledger against every checkpoint
kept: entries a checkpoint covered cannot be cut off, reordered or rewritten unnoticed.

The signed text follows the shape of transparency-log checkpoints (C2SP tlog-checkpoint):
an origin line, the size, the root, then this service's time line.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ivr.evidence.timestamps import Timestamper, TimestampError
from storage.merkle import Frontier
from storage.tree_heads import CHECKPOINT_LOCK, TreeHead, extend_frontier, ledger_origin

__all__ = [
    "Checkpoint",
    "Checkpointer",
    "CheckpointSigner",
    "CheckpointStore",
    "load_signer",
    "kept_checkpoints",
    "make_checkpoint",
    "public_key_of",
    "verify_signature",
]

log = structlog.get_logger(__name__)

SIGNED_HEADER = "consent-ivr ledger checkpoint v1"
KEY_FILE = "ledger-signing-key"  # under IVR_DATA_DIR when no key is configured


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    tree_size: int
    root_hash: str  # hex
    time: str  # ISO 8601, UTC
    key_id: str  # the first 16 hex digits of SHA-256 over the raw public key
    signature: str  # base64 Ed25519 signature over signed_text()
    # Not signed: the subtrees the root is made of, so the next checkpoint goes on from
    # here. They prove themselves: their root must be the signed one.
    frontier: tuple[str, ...] = ()

    def signed_text(self) -> bytes:
        return f"{SIGNED_HEADER}\n{self.origin}\n{self.tree_size}\n{self.root_hash}\n{self.time}\n".encode()

    @property
    def head(self) -> TreeHead:
        return TreeHead(self.tree_size, self.root_hash)

    @property
    def label(self) -> str:
        return f"checkpoint {self.time} ({self.tree_size:,} entries)"


def public_key_of(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def _key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


class CheckpointSigner:
    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self._public_raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = _key_id(self._public_raw)
        self.public_key = base64.b64encode(self._public_raw).decode()

    def sign(self, origin: str, frontier: Frontier, at: datetime) -> Checkpoint:
        unsigned = Checkpoint(
            origin, frontier.size, frontier.root().hex(), at.astimezone(UTC).isoformat(), self.key_id, ""
        )
        signature = base64.b64encode(self._key.sign(unsigned.signed_text())).decode()
        return Checkpoint(
            origin,
            unsigned.tree_size,
            unsigned.root_hash,
            unsigned.time,
            self.key_id,
            signature,
            tuple(frontier.to_hex()),
        )


def verify_signature(checkpoint: Checkpoint, public_key_b64: str) -> bool:
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64))
        public.verify(base64.b64decode(checkpoint.signature), checkpoint.signed_text())
    except (InvalidSignature, ValueError):
        return False
    return True


def load_signer(configured: str | None, key_file: Path | None, data_dir: Path) -> CheckpointSigner:
    """The signing key: ``LEDGER_SIGNING_KEY`` (base64 of the 32-byte seed), else the key file,
    else one generated now and kept (mode 0600) under the data directory."""
    if configured:
        return CheckpointSigner(Ed25519PrivateKey.from_private_bytes(base64.b64decode(configured)))
    path = key_file or data_dir / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        seed = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(base64.b64encode(seed).decode() + "\n")
        log.warning("ledger_signing_key_generated", path=str(path))
    seed = base64.b64decode(path.read_text().strip())
    return CheckpointSigner(Ed25519PrivateKey.from_private_bytes(seed))


class CheckpointStore:
    """One file per checkpoint under ``directory/ORIGIN/``, created exclusively, then read-only."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def write(self, checkpoint: Checkpoint) -> Path:
        body = json.dumps(asdict(checkpoint), indent=2, sort_keys=True) + "\n"
        return self._create(self._path(checkpoint, ".json"), body.encode())

    def write_token(self, checkpoint: Checkpoint, token: bytes) -> Path:
        """A TSA's RFC 3161 reply for ``checkpoint``, kept beside it (``.tsr``)."""
        return self._create(self._path(checkpoint, ".tsr"), token)

    def token(self, checkpoint: Checkpoint) -> bytes | None:
        path = self._path(checkpoint, ".tsr")
        return path.read_bytes() if path.exists() else None

    def _path(self, checkpoint: Checkpoint, suffix: str) -> Path:
        return self.directory / checkpoint.origin / f"{checkpoint.tree_size:015d}{suffix}"

    @staticmethod
    def _create(path: Path, body: bytes) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)  # never overwrite one
        with os.fdopen(fd, "wb") as out:
            out.write(body)
        return path

    def kept(self, origin: str) -> list[Checkpoint]:
        """Every checkpoint of ``origin``, smallest tree first (unreadable files are skipped, logged)."""
        found = []
        for path in sorted((self.directory / origin).glob("*.json")):
            try:
                data = json.loads(path.read_text())
                data["frontier"] = tuple(data.get("frontier", ()))
                found.append(Checkpoint(**data))
            except (ValueError, TypeError) as exc:
                log.error("checkpoint_unreadable", path=str(path), error=str(exc))
        return sorted(found, key=lambda c: c.tree_size)

    def other_origins(self, origin: str) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.name for p in self.directory.iterdir() if p.is_dir() and p.name != origin)


async def make_checkpoint(
    pool: asyncpg.Pool, signer: CheckpointSigner, store: CheckpointStore, timestamper: Timestamper | None = None
) -> Checkpoint | None:
    """Sign the tree as it is now, if it grew since the last checkpoint; None if it did not.

    Checkpointers in every process and host take turns under one advisory lock, and each
    goes on from the last kept checkpoint's frontier, reading only the entries after it.
    With a TSA, the checkpoint is then time-stamped; a TSA that fails leaves the checkpoint
    kept without a token (logged), never unmade.
    """
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        await conn.execute("SELECT pg_advisory_xact_lock($1)", CHECKPOINT_LOCK)
        origin = await ledger_origin(conn)
        kept = store.kept(origin)
        frontier = _resumed(kept[-1]) if kept else Frontier()
        await extend_frontier(conn, frontier)
        if kept and frontier.size == kept[-1].tree_size:
            return None
        checkpoint = signer.sign(origin, frontier, datetime.now(UTC))
        path = store.write(checkpoint)
    log.info("checkpoint_made", tree_size=checkpoint.tree_size, root=checkpoint.root_hash[:16], path=str(path))
    if timestamper is not None:
        try:
            store.write_token(checkpoint, await timestamper.stamp(checkpoint.signed_text()))
        except TimestampError as exc:
            log.error("checkpoint_not_timestamped", tree_size=checkpoint.tree_size, reason=str(exc))
    return checkpoint


def _resumed(last: Checkpoint) -> Frontier:
    """The last checkpoint's frontier, if it proves itself (its root is the signed root)."""
    try:
        frontier = Frontier.from_hex(last.tree_size, list(last.frontier))
    except ValueError:
        return Frontier()
    return frontier if frontier.root().hex() == last.root_hash else Frontier()


def kept_checkpoints(store: CheckpointStore, origin: str, public_key: str) -> tuple[list[Checkpoint], list[str]]:
    """The checkpoints of ``origin`` whose signature holds, and a problem line for each that does not."""
    good, bad = [], []
    for checkpoint in store.kept(origin):
        if verify_signature(checkpoint, public_key):
            good.append(checkpoint)
        else:
            bad.append(f"{checkpoint.label}: its signature does not verify with key {public_key}")
    return good, bad


@dataclass(frozen=True)
class Checkpointer:
    """What signs this service's checkpoints, and where they are kept: one handle for the
    background checkpointer and for bundles that need a checkpoint covering their records."""

    pool: asyncpg.Pool
    signer: CheckpointSigner
    store: CheckpointStore
    timestamper: Timestamper | None = None

    async def now(self) -> Checkpoint | None:
        return await make_checkpoint(self.pool, self.signer, self.store, self.timestamper)

    async def covering(self, origin: str, size: int) -> Checkpoint:
        """The newest kept checkpoint (signed with this service's key) of at least ``size``
        entries; one is made now if none covers them yet."""
        for attempt in range(2):
            good, _ = kept_checkpoints(self.store, origin, self.signer.public_key)
            if good and good[-1].tree_size >= size:
                return good[-1]
            if attempt == 0:
                await self.now()
        raise LookupError(f"no checkpoint of ledger {origin} covers its first {size:,} entries")
