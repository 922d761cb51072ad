"""``ivr flows show|check`` and ``ivr simulate``: review the flows, and try one by phone from a terminal."""

from __future__ import annotations

import asyncio
import os

import aiohttp
import click

from flows.script import render_script
from ivr.cli.common import (
    deployed_or_exit,
    dev_auth_token,
    load_settings,
)
from ivr.cli.simulator import SILENCE, FakeTwilio, Twiml, simulate_call
from ivr.flow_catalog import DEFAULT_FLOW

__all__ = ["flows", "simulate"]


@click.group()
def flows() -> None:
    """Review and check the voice flows this service serves."""


@flows.command("show")
@click.argument("name", default=DEFAULT_FLOW)
def flows_show(name: str) -> None:
    """Print flow NAME as a readable script: every prompt, key and branch, with its version."""
    deployed = deployed_or_exit()
    if name not in deployed:
        raise click.ClickException(f"no flow named {name!r}; deployed: {', '.join(sorted(deployed))}")
    click.echo(render_script(deployed[name]), nl=False)


@flows.command("check")
def flows_check() -> None:
    """Validate every deployed definition (targets, reachability, translations, placeholders)."""
    for flow in deployed_or_exit().values():
        click.echo(
            f"ok  {flow.name}  {flow.version}  ({len(flow.steps)} steps, languages: {', '.join(flow.languages)})"
        )


@click.command()
@click.option("--url", help="The service's public base URL (default: PUBLIC_BASE_URL, else http://127.0.0.1:8080).")
@click.option("--flow", "flow_name", help="Start the call on this flow (as /twilio/voice?flow=NAME).")
@click.option("--lang", help="Start the call in this language (as /twilio/voice?lang=xx).")
@click.option("--from", "caller", help="The caller's number (default: a random +1 number).")
@click.option(
    "--script",
    help='Answers, comma-separated: keys ("1", "*12#"), "-" for silence, "rec:8" to speak 8 s at a recording.',
)
def simulate(url: str | None, flow_name: str | None, lang: str | None, caller: str | None, script: str | None) -> None:
    """Make a whole call against a running service, signed like Twilio, from the terminal."""
    settings = load_settings(os.environ, need_twilio=False)
    base_url = url or settings.public_base_url or "http://127.0.0.1:8080"
    token = settings.auth_token if settings.twilio_auth_token else dev_auth_token(settings.data_dir)
    query = "&".join(f"{k}={v}" for k, v in (("flow", flow_name), ("lang", lang)) if v)
    keys = iter(script.split(",")) if script is not None else None

    async def next_keys(_: Twiml) -> str | None:
        if keys is not None:
            return next(keys, None)
        try:
            typed = await asyncio.to_thread(
                click.prompt, "keys (Enter = silence, q = hang up)", default="", show_default=False
            )
        except click.Abort:  # end of input: the caller hangs up
            return None
        return None if typed == "q" else (typed or SILENCE)

    async def run() -> None:
        async with aiohttp.ClientSession() as http:
            await simulate_call(FakeTwilio(http, base_url, token), next_keys, click.echo, caller=caller, query=query)

    try:
        asyncio.run(run())
    except aiohttp.ClientError as exc:
        raise click.ClickException(f"cannot reach {base_url}: {exc}") from None
