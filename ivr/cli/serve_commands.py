"""``ivr serve`` and ``ivr migrate``: run the service; bring the schema up to date."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import click
from aiohttp import web

from ivr import appkeys
from ivr.app import create_app
from ivr.cli.common import (
    DEV_TOKEN_FILE,
    load_settings,
    migrate_now,
)
from ivr.ops.logs import AccessLog, configure_logging
from ivr.ops.security_headers import LINGERING_TIME_S
from ivr.ops.workers import supervise
from ivr.settings import Settings
from ivr.time_budget import SHUTDOWN_DRAIN_S
from ivr.voice.routes import STATUS_PATH, VOICE_PATH

__all__ = ["migrate", "serve"]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Processes on the port.")
@click.option("--reuse-port", is_flag=True, hidden=True, help="Share the port with sibling workers.")
def serve(host: str, port: int, workers: int, reuse_port: bool) -> None:
    """Migrate the database, then answer Twilio's webhooks until SIGINT/SIGTERM."""
    settings = load_settings(os.environ, port=port)
    configure_logging(settings.log_level, settings.effective_log_format)
    if workers > 1:
        click.echo(banner(settings, None, host, port) + f"\n{workers} worker processes share the port.")
        env = dict(os.environ) | {"PUBLIC_BASE_URL": settings.base_url, "TWILIO_AUTH_TOKEN": settings.auth_token}
        sys.exit(supervise(workers, host, port, env, settings.data_dir))
    app = create_app(settings)

    async def announce(app: web.Application) -> None:
        click.echo(banner(settings, app, host, port))

    if not reuse_port:  # a lone process introduces itself; workers leave it to their supervisor
        app.on_startup.append(announce)
    asyncio.run(_serve_until_signalled(app, host, port, reuse_port))


async def _serve_until_signalled(app: web.Application, host: str, port: int, reuse_port: bool) -> None:
    """Serve until SIGINT/SIGTERM, then drain: stop listening, let every webhook already
    accepted finish (bounded), and only then run the cleanup contexts that close the pools.

    Not ``web.run_app``: it stops from a cancelled task, where a drain that reaches its
    timeout aborts the cleanup, and a second signal (Ctrl-C pressed again, or a terminal's
    SIGINT on top of the one a supervisor forwards) kills the handlers mid-answer. Here
    the drain always runs to its end and further signals change nothing.
    """
    runner = web.AppRunner(
        app,
        shutdown_timeout=SHUTDOWN_DRAIN_S,
        keepalive_timeout=75,
        lingering_time=LINGERING_TIME_S,
        access_log_class=AccessLog,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await runner.setup()  # a start-up that fails half-way still closes what it opened
        await web.TCPSite(runner, host, port, reuse_port=reuse_port or None).start()
        await stop.wait()
    finally:
        await runner.cleanup()


@click.command()
def migrate() -> None:
    """Apply pending database migrations (safe to run twice, or from two hosts at once)."""
    settings = load_settings(os.environ, need_twilio=False)
    configure_logging(settings.log_level, settings.effective_log_format)
    applied = asyncio.run(migrate_now(settings))
    click.echo(f"schema up to date; applied now: {', '.join(applied) or 'nothing'}")


def banner(settings: Settings, app: web.Application | None, host: str, port: int) -> str:
    lines = [
        f"Consent IVR listening on http://{host}:{port} (public URL {settings.base_url})",
        "Point your Twilio number at:",
        f"  A call comes in     POST {settings.base_url}{VOICE_PATH}",
        f"  Call status changes POST {settings.base_url}{STATUS_PATH}",
        "Postgres: "
        + ("from DATABASE_URL" if settings.database_url else f"embedded, data in {settings.data_dir / 'postgres'}"),
        "Redis:    " + ("from REDIS_URL" if settings.redis_url else f"embedded, data in {settings.data_dir / 'redis'}"),
        f"Ledger checkpoints: every {settings.checkpoint_interval_s:g} s into {settings.checkpoints_dir}",
    ]
    if app is not None and appkeys.CHECKPOINT_SIGNER in app:
        lines.append(f"  signed with Ed25519 public key {app[appkeys.CHECKPOINT_SIGNER].public_key} (for auditors)")
    if settings.dev_mode:
        lines += [
            "",
            "WARNING: development mode (IVR_DEV=1). Not for real calls.",
            f"  TWILIO_AUTH_TOKEN: {settings.auth_token}  (kept in {settings.data_dir / DEV_TOKEN_FILE} unless set)",
            "  Webhook signatures are still checked: sign test requests with this token.",
        ]
    return "\n".join(lines)
