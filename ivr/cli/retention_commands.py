"""``ivr retention run`` and ``ivr hold add|remove|list``: remove what is past retention, keep what is held."""

from __future__ import annotations

import asyncio
import getpass
import os
from datetime import UTC, datetime

import asyncpg
import click

from ivr import appkeys
from ivr.cli.common import (
    load_settings,
    run_or_bad_parameter,
    storage_app,
)
from ivr.ops.logs import configure_logging
from ivr.subjects import resolve_subject
from storage.ledger import chained
from storage.postgres import connect
from storage.retention import active_holds, hold, plan_removal, remove

__all__ = ["holds", "retention"]


@click.group()
def retention() -> None:
    """Remove evidence past its retention period (never under a legal hold)."""


@retention.command("run")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@click.option("--as-of", type=click.DateTime(), help="Plan as if it were this UTC time (with --dry-run, a forecast).")
@click.option("--reason", default="retention period passed", show_default=True)
def retention_run(dry_run: bool, as_of: datetime | None, reason: str) -> None:
    """Remove whole calls whose evidence is past retention, leaving a chained tombstone."""
    if as_of is not None and not dry_run:
        # Evidence goes when its time has come, never on a promise that it will have:
        # a forecast is only ever a dry run.
        raise click.UsageError("--as-of plans a forecast; use it with --dry-run (a real run is as of now)")
    settings = load_settings(os.environ, need_twilio=False)
    configure_logging(settings.log_level, settings.effective_log_format)
    when = as_of.replace(tzinfo=UTC) if as_of else datetime.now(UTC)
    periods = settings.retention_periods

    async def run() -> tuple[int, int]:
        async with storage_app(settings) as app:
            owner = await connect(app[appkeys.OWNER_DSN])  # only the tables' owner may remove
            try:
                async with chained(owner) as chain:
                    plan = await plan_removal(owner, periods, settings.retention_days, when)
                    if dry_run or not plan.rows:
                        return len(plan.call_sids), len(plan.rows)
                    removed = await remove(
                        chain,
                        plan,
                        actor=getpass.getuser(),
                        reason=reason,
                        periods=periods,
                        default_days=settings.retention_days,
                        as_of=when,
                    )
                    return len(plan.call_sids), removed
            finally:
                await owner.close()

    calls, rows = asyncio.run(run())
    verb = "would remove" if dry_run else "removed"
    click.echo(f"{verb} {calls} call(s), {rows} evidence row(s) (as of {when.isoformat()})")


@click.group("hold")
def holds() -> None:
    """Legal holds: a subject on hold keeps all its evidence, whatever the retention."""


@holds.command("add")
@click.option("--subject", required=True, help="An E.164 number or an account number.")
@click.option("--reason", required=True)
def hold_add(subject: str, reason: str) -> None:
    click.echo(f"hold placed on {_hold(subject, 'place', reason)}")


@holds.command("remove")
@click.option("--subject", required=True)
@click.option("--reason", required=True)
def hold_remove(subject: str, reason: str) -> None:
    click.echo(f"hold released on {_hold(subject, 'release', reason)}")


@holds.command("list")
def hold_list() -> None:
    settings = load_settings(os.environ, need_twilio=False)

    async def run() -> list[asyncpg.Record]:
        async with storage_app(settings) as app, app[appkeys.PG_POOL].acquire() as conn:
            return [h for h in await active_holds(conn) if h["action"] == "place"]

    for held in asyncio.run(run()):
        click.echo(f"{held['subject']}  since {held['at'].isoformat()}  by {held['actor']}: {held['reason']}")


def _hold(subject: str, action: str, reason: str) -> str:
    settings = load_settings(os.environ, need_twilio=False)
    configure_logging(settings.log_level, settings.effective_log_format)

    async def run() -> str:
        async with storage_app(settings) as app, app[appkeys.PG_POOL].acquire() as conn, chained(conn) as chain:
            found = await resolve_subject(conn, subject)  # nothing is stored for a subject that is no one
            await hold(chain, found.value, action, reason, getpass.getuser())
            return found.value

    return run_or_bad_parameter(run(), "--subject")
