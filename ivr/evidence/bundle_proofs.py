"""The proofs in a call's bundle: each record's ledger entry and inclusion proof against
a signed checkpoint, the checkpoint itself (and its time-stamp), the public key, a
manifest of every file, and ``verify.py`` to check it all with Python alone.

The bundle proves a record only as far as the checkpoint it names: an auditor who kept
the service's public key (and, better, the checkpoints themselves) checks the bundle
against those, not against the copies inside it (docs/verifying-evidence.md).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import structlog

from ivr.evidence.checkpoints import Checkpointer
from storage.inclusion import call_entries, tree_of
from storage.merkle import inclusion_proof
from storage.postgres import Connection
from storage.tree_heads import ledger_origin

__all__ = ["FORMAT", "VERIFIER", "manifested", "proof_files"]

log = structlog.get_logger(__name__)

FORMAT = "consent-ivr bundle proofs v1"  # bundle_verifier.FORMAT says the same
VERIFIER = Path(__file__).with_name("bundle_verifier.py")


async def proof_files(
    conn: Connection, call_sid: str, checkpointer: Checkpointer
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The proof files of the call's bundle, and its proofs (to be written with ``manifested``)."""
    entries = await call_entries(conn, call_sid)
    origin = await ledger_origin(conn)
    checkpoint = await checkpointer.covering(origin, max((e.seq for e in entries), default=0))
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        tree = await tree_of(conn, checkpoint.tree_size)
    if tree.size != checkpoint.tree_size or tree.root().hex() != checkpoint.root_hash:
        # The ledger no longer matches what was signed: the proofs below fail, as they must.
        log.error("ALERT_ledger_contradicts_checkpoint", tree_size=checkpoint.tree_size, call_sid=call_sid)
    files = {
        "checkpoint.json": (json.dumps(_signed_fields(checkpoint), indent=2, sort_keys=True) + "\n").encode(),
        "checkpoint-signed.txt": checkpoint.signed_text(),
        "ledger-public-key.txt": (checkpointer.signer.public_key + "\n").encode(),
        "verify.py": VERIFIER.read_bytes(),
    }
    token = checkpointer.store.token(checkpoint)
    if token is not None:
        files["checkpoint.tsr"] = token
    proofs = {
        "format": FORMAT,
        "call_sid": call_sid,
        "entries": [
            {
                "seq": e.seq,
                "kind": e.kind,
                "ref_id": e.ref_id,
                "prev_hash": e.prev_hash,
                "hash": e.hash,
                "row": e.row,
                "proof": [h.hex() for h in inclusion_proof(tree, e.seq - 1)] if e.seq <= tree.size else [],
            }
            for e in entries
        ],
    }
    return files, proofs


def _signed_fields(checkpoint: Any) -> dict[str, Any]:
    fields = ("origin", "tree_size", "root_hash", "time", "key_id", "signature")
    return {name: getattr(checkpoint, name) for name in fields}


def manifested(proofs: dict[str, Any], files: dict[str, bytes]) -> bytes:
    """``proofs.json``: the proofs, and the SHA-256 of every other file of the bundle."""
    manifest = {name: hashlib.sha256(body).hexdigest() for name, body in sorted(files.items())}
    return (json.dumps(proofs | {"files": manifest}, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()
