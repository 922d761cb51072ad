"""``ivr customers import`` and ``unlock``: load the customer directory from CSV (all rows or
none); restore PIN entry on an account locked after too many wrong PINs."""

from __future__ import annotations

import asyncio
import getpass
import os
from pathlib import Path

import click

from ivr import appkeys
from ivr.access.pins import PepperError, PinHasher, load_pepper
from ivr.cli.common import (
    load_settings,
    storage_app,
)
from ivr.cli.customer_csv import parse_customers, with_hashed_pins
from ivr.identifiers import ACCOUNT_NUMBER
from ivr.ops.logs import configure_logging
from ivr.settings import Settings
from storage.customers import PinState, customer, note_pin_unlock, pin_state, upsert_customer
from storage.ledger import chained
from storage.postgres import connect

__all__ = ["customers"]


@click.group()
def customers() -> None:
    """The customer directory used to identify callers."""


@customers.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def customers_import(path: Path) -> None:
    """Load customers from a CSV file (account_number,name,phones,pin); all rows or none."""
    rows, problems = parse_customers(path.read_text(encoding="utf-8-sig"))
    if problems:
        for problem in problems:
            click.echo(f"{path}: {problem}", err=True)
        raise click.ClickException(f"nothing imported: {len(problems)} problem(s)")
    settings = load_settings(os.environ, need_twilio=False)
    configure_logging(settings.log_level, settings.effective_log_format)
    loaded = with_hashed_pins(rows, _pins(settings))

    async def store() -> None:
        # The directory decides who a caller is taken to be: the owner keeps it, not the service.
        async with storage_app(settings) as app:
            conn = await connect(app[appkeys.OWNER_DSN])
            try:
                async with conn.transaction():
                    for customer in loaded:
                        await upsert_customer(conn, customer)
            finally:
                await conn.close()

    asyncio.run(store())
    with_pin = sum(1 for c in loaded if c.pin_hash)
    click.echo(f"imported {len(loaded)} customer(s), {with_pin} with a PIN, from {path}")


@customers.command("unlock")
@click.argument("account")
@click.option("--reason", default="PIN entry restored by staff", show_default=True, help="Kept with the unlock.")
def customers_unlock(account: str, reason: str) -> None:
    """Restore PIN entry on ACCOUNT: its wrong PINs so far no longer count.

    Lifts any lock, the hard lock after too many wrong PINs in a day included; the
    unlock is chained evidence (who, when, why). Only the tables' owner can write one.
    """
    if not ACCOUNT_NUMBER.match(account):
        raise click.BadParameter("an account number is 4 to 20 digits", param_hint="ACCOUNT")
    settings = load_settings(os.environ, need_twilio=False)
    configure_logging(settings.log_level, settings.effective_log_format)

    async def unlock() -> PinState | None:
        async with storage_app(settings) as app:
            conn = await connect(app[appkeys.OWNER_DSN])  # the service's login cannot lift a lock
            try:
                async with chained(conn) as chain:
                    before = await pin_state(conn, account)  # waits for a PIN check in progress
                    if not before.checked_before and await customer(conn, account) is None:
                        return None
                    await note_pin_unlock(chain, account, getpass.getuser(), reason)
                    return before
            finally:
                await conn.close()

    before = asyncio.run(unlock())
    if before is None:
        problem = f"no customer has account {account} and no PIN was ever tried for it"
        raise click.BadParameter(problem, param_hint="ACCOUNT")
    click.echo(f"PIN entry restored on account {account}: {_was(before)}")


def _was(state: PinState) -> str:
    entry, count = state.entry, len(state.entry.guesses)
    if entry.hard_locked_at is not None:
        return f"it was locked until restored, since {entry.hard_locked_at.isoformat()} ({count} wrong PINs)"
    if entry.locked_until is not None and entry.locked_at(state.now):
        return f"it was locked until {entry.locked_until.isoformat()} ({count} wrong PINs)"
    return f"it was not locked ({count} wrong PIN(s) since the last right one no longer count)"


def _pins(settings: Settings) -> PinHasher:
    """The PIN hasher the service uses, from the same settings (so both hash with one pepper)."""
    pepper = settings.pin_pepper.get_secret_value() if settings.pin_pepper else None
    try:
        return load_pepper(pepper, settings.pin_pepper_file, settings.data_dir)
    except PepperError as exc:
        raise click.ClickException(str(exc)) from None
