"""``ivr customers import``: load the customer directory from CSV (all rows or none)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import click

from ivr import appkeys
from ivr.cli.common import (
    load_settings,
    storage_app,
)
from ivr.cli.customer_csv import parse_customers, with_hashed_pins
from ivr.ops.logs import configure_logging
from storage.customers import upsert_customer
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
    loaded = with_hashed_pins(rows)

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
