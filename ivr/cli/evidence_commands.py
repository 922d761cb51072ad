"""``ivr verify``, ``ivr consent``, ``ivr export``: check the ledger, read a subject's state, export receipts."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import click
from cryptography.x509 import Certificate

from ivr import appkeys
from ivr.cli.common import (
    deployed_or_exit,
    load_settings,
    run_or_bad_parameter,
    signer_of,
    storage_app,
)
from ivr.evidence.checkpoints import Checkpoint, CheckpointStore, kept_checkpoints, make_checkpoint
from ivr.evidence.receipt_files import ReceiptWriter
from ivr.evidence.receipts import ReceiptMaker
from ivr.evidence.recording_keys import recording_store
from ivr.evidence.timestamps import Timestamper, check_token, load_roots
from ivr.flow_catalog import purpose_rules
from ivr.ops.logs import configure_logging
from ivr.subjects import Subject, resolve_subject
from storage.consent_state import ConsentState, consent_states
from storage.exports import events_for_receipts
from storage.tree_heads import ledger_origin
from storage.verify import Break, Head, KeptCheckpoint, Report, ledger_head, verify_ledger

__all__ = ["checkpoint", "consent", "export", "verify"]


@click.command()
@click.option("--head", "head_only", is_flag=True, help="Only print the current head (hash and count) to keep.")
@click.option("--since-head", metavar="HASH", help="Also check that a head kept earlier is still in the chain.")
@click.option(
    "--public-key", metavar="BASE64", help="Check checkpoints with this Ed25519 key (default: this service's)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object (progress stays on stderr).")
def verify(head_only: bool, since_head: str | None, public_key: str | None, as_json: bool) -> None:
    """Recompute the evidence ledger's hash chain and its tree against every kept checkpoint,
    and recheck every retention run's removals; exit 1 naming what is broken."""
    settings = load_settings(os.environ, need_twilio=False)
    configure_logging(settings.log_level, settings.effective_log_format)
    key = public_key or signer_of(settings).public_key
    store = CheckpointStore(settings.checkpoints_dir)

    async def run() -> tuple[Report | Head, list[str], str]:
        async with storage_app(settings) as app, app[appkeys.PG_POOL].acquire() as conn:
            if head_only:
                return await ledger_head(conn), [], ""
            origin = await ledger_origin(conn)
            good, bad = kept_checkpoints(store, origin, key)
            bad += _token_problems(store, good, load_roots(settings.tsa_ca_file))
            kept = [KeptCheckpoint(c.head, c.label, _signed_at(c)) for c in good]
            media = recording_store(settings)  # opens sealed recordings to rehash their audio
            report = await verify_ledger(conn, since_head=since_head, checkpoints=kept, media=media, progress=_progress)
            return report, bad, origin

    result, unsigned, origin = asyncio.run(run())
    others = store.other_origins(origin) if origin else []
    if isinstance(result, Report) and result.checkpoints_checked == 0 and others:
        # A new database, or a replaced one: the checkpoints kept here cover other ledgers.
        click.echo(
            f"note: no checkpoint of this ledger ({origin}) yet; {settings.checkpoints_dir} holds checkpoints of "
            f"{len(others)} other ledger(s). If this database replaced one of them, its history is not covered.",
            err=True,
        )
    if isinstance(result, Head):
        if as_json:
            click.echo(json.dumps({"head": result.hash, "entries": result.seq, "verified": False}))
            return
        click.echo(f"head {result.hash} entries {result.seq}  (not verified; run `ivr verify` to check)")
        return
    if as_json:
        _report_json(result, unsigned, origin, since_head)
    else:
        _report(result, unsigned, origin, since_head)


def _signed_at(checkpoint: Checkpoint) -> datetime | None:
    """The checkpoint's signed time (None if it cannot be read: it then bounds no retention claim)."""
    try:
        at = datetime.fromisoformat(checkpoint.time)
    except ValueError:
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _progress(entries: int) -> None:
    click.echo(f"checked {entries:,} entries…", err=True)


def _token_problems(store: CheckpointStore, kept: list[Checkpoint], roots: list[Certificate] | None) -> list[str]:
    """Every kept RFC 3161 token must be a TSA's time-stamp of its checkpoint's signed text."""
    problems = []
    for checkpoint in kept:
        token = store.token(checkpoint)
        problem = check_token(token, checkpoint.signed_text(), roots) if token is not None else None
        if problem is not None:
            problems.append(f"{checkpoint.label}: {problem}")
    return problems


def _report(result: Report, unsigned: list[str], origin: str, since_head: str | None) -> None:
    if result.since_head_seq is not None and since_head is not None:
        click.echo(
            f"kept head {since_head} is entry #{result.since_head_seq}; {result.entries - result.since_head_seq} since"
        )
    for run_id in result.retention_unjustified:
        click.echo(f"run {run_id} predates justifications: its eligibility cannot be rechecked")
    click.echo(
        f"retention: {result.retention_checked} run(s) rechecked, {result.retention_break_count} removal(s) not allowed"
    )
    breaks = (*result.breaks, *result.checkpoint_breaks, *result.media_breaks, *result.retention_breaks)
    problems = [str(b) for b in breaks] + [f"bad checkpoint: {line}" for line in unsigned]
    if problems:
        unlisted_chain = result.break_count - len(result.breaks)
        unlisted_retention = result.retention_break_count - len(result.retention_breaks)
        count = len(problems) + unlisted_chain + unlisted_retention
        click.echo(f"ledger BROKEN: {count} problem(s) among {result.entries} entries:", err=True)
        for problem in problems:
            click.echo(f"  {problem}", err=True)
        if unlisted_chain:
            click.echo(f"  … and {unlisted_chain} more breaks of the chain", err=True)
        if unlisted_retention:
            click.echo(f"  … and {unlisted_retention} more removals not allowed", err=True)
        sys.exit(1)
    click.echo(
        f"ledger intact: {result.entries} entries, head {result.head.hash}; "
        f"tree consistent with {result.checkpoints_checked} signed checkpoint(s) of ledger {origin}; "
        f"{result.media_checked} recording(s) match their chained SHA-256"
    )


def _report_json(result: Report, unsigned: list[str], origin: str, since_head: str | None) -> None:
    """The report as one JSON object on stdout; exit 1 when anything is broken."""

    def listed(breaks: tuple[Break, ...]) -> list[dict[str, Any]]:
        return [asdict(b) | {"text": str(b)} for b in breaks]

    intact = result.intact and not unsigned
    click.echo(
        json.dumps(
            {
                "intact": intact,
                "origin": origin,
                "entries": result.entries,
                "head": result.head.hash,
                "removed": result.removed,
                "since_head": None if since_head is None else {"hash": since_head, "seq": result.since_head_seq},
                "breaks": listed(result.breaks),
                "break_count": result.break_count,
                "checkpoints_checked": result.checkpoints_checked,
                "checkpoint_breaks": listed(result.checkpoint_breaks),
                "bad_checkpoints": unsigned,
                "media_checked": result.media_checked,
                "media_breaks": listed(result.media_breaks),
                "retention_checked": result.retention_checked,
                "retention_breaks": listed(result.retention_breaks),
                "retention_break_count": result.retention_break_count,
                "retention_unjustified": list(result.retention_unjustified),
            },
            indent=2,
        )
    )
    if not intact:
        sys.exit(1)


@click.command()
@click.option("--public-key", "show_key", is_flag=True, help="Only print the public key auditors check with.")
def checkpoint(show_key: bool) -> None:
    """Sign and keep a checkpoint of the ledger's tree now (if it grew since the last)."""
    settings = load_settings(os.environ, need_twilio=False)
    configure_logging(settings.log_level, settings.effective_log_format)
    signer = signer_of(settings)
    if show_key:
        click.echo(signer.public_key)
        return
    store = CheckpointStore(settings.checkpoints_dir)
    stamps = Timestamper(settings.tsa_url) if settings.tsa_url else None

    async def run() -> Checkpoint | None:
        async with storage_app(settings) as app:
            return await make_checkpoint(app[appkeys.PG_POOL], signer, store, stamps)

    made = asyncio.run(run())
    if made is None:
        click.echo("no checkpoint needed: the ledger has not grown since the last one")
        return
    click.echo(f"{made.label}: root {made.root_hash}, ledger {made.origin}, key {signer.public_key}")


@click.command()
@click.argument("subject")
@click.option("--as-of", type=click.DateTime(), help="The state at this UTC time instead of now.")
def consent(subject: str, as_of: datetime | None) -> None:
    """Print SUBJECT's consent (an E.164 number or an account number) for every purpose."""
    settings = load_settings(os.environ, need_twilio=False)
    configure_logging(settings.log_level, settings.effective_log_format)
    rules = purpose_rules(deployed_or_exit())
    when = as_of.replace(tzinfo=UTC) if as_of else datetime.now(UTC)

    async def run() -> tuple[Subject, list[ConsentState]]:
        async with storage_app(settings) as app, app[appkeys.PG_POOL].acquire() as conn:
            found = await resolve_subject(conn, subject)
            return found, await consent_states(conn, found.value, rules, as_of=when)

    found, states = run_or_bad_parameter(run(), "SUBJECT")
    click.echo(f"{found.value} ({found.type.value}) as of {when.isoformat()}")
    for state in states:
        since = f" since {state.since.isoformat()}" if state.since else ""
        decided = _deciding_record(state, found.value)
        honor = f" honor by {state.honor_by.isoformat()}" if state.honor_by else ""
        click.echo(f"  {state.purpose:<18} {state.status.value:<15}{since}{decided}{honor}")


@click.command()
@click.option("--phone", "subject", help="Only this subject (an E.164 number or an account number).")
@click.option("--since", type=click.DateTime(), help="Only decisions from this UTC time on.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
def export(subject: str | None, since: datetime | None, fmt: str) -> None:
    """Stream decisions with their receipts to standard output (JSON lines or CSV)."""
    settings = load_settings(os.environ, need_twilio=False)
    configure_logging(settings.log_level, settings.effective_log_format)
    flows = deployed_or_exit()
    maker = ReceiptMaker(flows.values(), settings.controller)
    writer = ReceiptWriter(sys.stdout, fmt)

    async def run() -> int:
        async with (
            storage_app(settings) as app,
            app[appkeys.PG_POOL].acquire() as conn,
            conn.transaction(readonly=True),
        ):
            count = 0
            only = (await resolve_subject(conn, subject)).value if subject is not None else None
            async for row in events_for_receipts(conn, subject=only, since=since and since.replace(tzinfo=UTC)):
                writer.write(maker.receipt(row))
                count += 1
            return count

    exported = run_or_bad_parameter(run(), "--phone")
    click.echo(f"exported {exported} decision(s)", err=True)


def _deciding_record(state: ConsentState, subject: str) -> str:
    """`` (event ID)``, naming the subject it was made for when that is another (a linked one)."""
    if state.event_id is None:
        return ""
    linked = f", made for {state.decided_for}" if state.decided_for not in (None, subject) else ""
    return f" (event {state.event_id}{linked})"
