"""``ivr prove``: proofs for an auditor who holds checkpoints but not the database.

``ivr prove consistency --from N`` writes the RFC 9162 consistency proof that the
ledger's tree at a kept checkpoint of N entries is the beginning of its tree at the
latest checkpoint, with both signed checkpoints. ``python3 verify.py --consistency FILE``
(the script in every evidence bundle) checks it with Python alone: an auditor who kept
the old checkpoint learns the new one extends it — nothing was cut off or rewritten.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import click

from ivr import appkeys
from ivr.cli.common import load_settings, signer_of, storage_app
from ivr.evidence.checkpoints import Checkpoint, CheckpointStore, kept_checkpoints
from ivr.ops.logs import configure_logging
from storage.inclusion import tree_of
from storage.merkle import consistency_proof
from storage.tree_heads import ledger_origin

__all__ = ["prove"]

CONSISTENCY_FORMAT = "consent-ivr consistency proof v1"  # bundle_verifier says the same


@click.group()
def prove() -> None:
    """Proofs about the ledger an auditor can check without the database."""


@prove.command("consistency")
@click.option("--from", "old_size", type=click.IntRange(1), required=True, help="The kept checkpoint's size.")
@click.option("--to", "new_size", type=click.IntRange(1), help="A later checkpoint's size (default: the latest).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here, not stdout.")
def consistency(old_size: int, new_size: int | None, output: Path | None) -> None:
    """Prove the checkpoint of --from entries is the start of a later one (RFC 9162 §2.1.4)."""
    settings = load_settings(os.environ, need_twilio=False)
    configure_logging(settings.log_level, settings.effective_log_format)
    signer = signer_of(settings)

    async def run() -> dict[str, object]:
        async with storage_app(settings) as app, app[appkeys.PG_POOL].acquire() as conn:
            origin = await ledger_origin(conn)
            good, _ = kept_checkpoints(CheckpointStore(settings.checkpoints_dir), origin, signer.public_key)
            old = _sized(good, old_size)
            new = _sized(good, new_size) if new_size else (good[-1] if good else None)
            if old is None or new is None or new.tree_size < old.tree_size:
                raise click.ClickException(f"no kept checkpoints of {old_size} and a later size for ledger {origin}")
            async with conn.transaction(readonly=True, isolation="repeatable_read"):
                tree = await tree_of(conn, new.tree_size)
            if tree.root().hex() != new.root_hash:
                raise click.ClickException(f"the ledger no longer matches {new.label}: run `ivr verify`")
            proof = consistency_proof(tree, old.tree_size) if old.tree_size < new.tree_size else []
            return {
                "format": CONSISTENCY_FORMAT,
                "old": _public(old),
                "new": _public(new),
                "proof": [node.hex() for node in proof],
                "public_key": signer.public_key,
            }

    body = json.dumps(asyncio.run(run()), indent=2) + "\n"
    if output is None:
        sys.stdout.write(body)
    else:
        output.write_text(body)
        click.echo(f"wrote {output}", err=True)


def _sized(kept: list[Checkpoint], size: int | None) -> Checkpoint | None:
    return next((c for c in kept if c.tree_size == size), None)


def _public(checkpoint: Checkpoint) -> dict[str, object]:
    fields = asdict(checkpoint)
    del fields["frontier"]  # not signed; the proof needs only the signed head
    return fields
