"""``ivr verify``, ``ivr consent``, ``ivr export``: check the ledger, read a subject's state, export receipts."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime

import click

from ivr import appkeys
from ivr.cli.common import (
    deployed_or_exit,
    load_settings,
    run_or_bad_parameter,
    storage_app,
)
from ivr.evidence.receipt_files import ReceiptWriter
from ivr.evidence.receipts import ReceiptMaker
from ivr.flow_catalog import purpose_rules
from ivr.ops.logs import configure_logging
from ivr.subjects import Subject, resolve_subject
from storage.consent_state import ConsentState, consent_states
from storage.exports import events_for_receipts
from storage.verify import Head, Report, ledger_head, verify_ledger

__all__ = ["consent", "export", "verify"]


@click.command()
@click.option("--head", "head_only", is_flag=True, help="Only print the current head (hash and count) to keep.")
@click.option("--since-head", metavar="HASH", help="Also check that a head kept earlier is still in the chain.")
def verify(head_only: bool, since_head: str | None) -> None:
    """Recompute the evidence ledger's hash chain; exit 1 naming the first bad record."""
    settings = load_settings(os.environ, need_twilio=False)
    configure_logging(settings.log_level, settings.effective_log_format)

    async def run() -> Report | Head:
        async with storage_app(settings) as app, app[appkeys.PG_POOL].acquire() as conn:
            if head_only:
                return await ledger_head(conn)
            return await verify_ledger(conn, since_head=since_head)

    result = asyncio.run(run())
    if isinstance(result, Head):
        click.echo(f"head {result.hash} entries {result.seq}  (not verified; run `ivr verify` to check)")
        return
    if result.since_head_seq is not None and since_head is not None:
        click.echo(
            f"kept head {since_head} is entry #{result.since_head_seq}; {result.entries - result.since_head_seq} since"
        )
    if not result.intact:
        click.echo(f"ledger BROKEN after {result.entries} good entries: {result.first_break}", err=True)
        sys.exit(1)
    click.echo(f"ledger intact: {result.entries} entries, head {result.head.hash}")


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
