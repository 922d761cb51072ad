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
    storage_app,
)
from ivr.evidence.receipt_files import ReceiptWriter
from ivr.evidence.receipts import ReceiptMaker
from ivr.flow_catalog import purpose_rules
from ivr.ops.logs import configure_logging
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

    async def run() -> list[ConsentState]:
        async with storage_app(settings) as app, app[appkeys.PG_POOL].acquire() as conn:
            return await consent_states(conn, subject, rules, as_of=when)

    click.echo(f"{subject} as of {when.isoformat()}")
    for state in asyncio.run(run()):
        since = f" since {state.since.isoformat()}" if state.since else ""
        decided = f" (event {state.event_id})" if state.event_id else ""
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
            async for row in events_for_receipts(conn, subject=subject, since=since and since.replace(tzinfo=UTC)):
                writer.write(maker.receipt(row))
                count += 1
            return count

    exported = asyncio.run(run())
    click.echo(f"exported {exported} decision(s)", err=True)
