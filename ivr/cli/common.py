"""What every ``ivr`` command shares: settings from the environment, Postgres alone, the deployed flows."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click
from aiohttp import web

from flows.loader import FlowDefinitionError
from flows.model import Flow
from ivr import appkeys
from ivr.evidence.checkpoints import CheckpointSigner, load_signer
from ivr.flow_catalog import deployed_flows
from ivr.identifiers import InvalidIdentifier
from ivr.resources import postgres_ctx, postgres_server_ctx
from ivr.settings import ConfigError, Settings
from storage.postgres import Connection

__all__ = [
    "signer_of",
    "run_or_bad_parameter",
    "DEV_TOKEN_FILE",
    "deployed_or_exit",
    "dev_auth_token",
    "load_settings",
    "migrate_now",
    "storage_app",
    "with_conn",
]

DEV_TOKEN_FILE = "dev-twilio-auth-token"
T = TypeVar("T")


@contextlib.asynccontextmanager
async def storage_app(settings: Settings) -> AsyncIterator[web.Application]:
    """Postgres alone, migrated (an embedded one is started and stopped if none is configured)."""
    app = web.Application()
    app[appkeys.SETTINGS] = settings
    app.cleanup_ctx.extend([postgres_server_ctx, postgres_ctx])
    runner = web.AppRunner(app)
    try:
        await runner.setup()  # a start-up that fails half-way still closes what it opened
        yield app
    finally:
        await runner.cleanup()


async def migrate_now(settings: Settings) -> list[str]:
    async with storage_app(settings) as app:
        return [f"{m.version:04d}_{m.name}" for m in app[appkeys.APPLIED_MIGRATIONS]]


def load_settings(environ: Mapping[str, str], *, port: int = 8080, need_twilio: bool = True) -> Settings:
    try:
        env = dict(environ)
        base = Settings.from_env(env, need_twilio=False)
        if base.dev_mode and need_twilio:
            env.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{port}")
            if not env.get("TWILIO_AUTH_TOKEN"):
                env["TWILIO_AUTH_TOKEN"] = dev_auth_token(base.data_dir)
        return Settings.from_env(env, need_twilio=need_twilio)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        sys.exit(2)


def dev_auth_token(data_dir: Path) -> str:
    """A stable, random stand-in for Twilio's auth token, kept under the data directory."""
    path = data_dir / DEV_TOKEN_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(16) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def deployed_or_exit() -> dict[str, Flow]:
    settings = load_settings(os.environ, need_twilio=False)
    try:
        return deployed_flows(settings.flows_dir)
    except FlowDefinitionError as exc:
        click.echo(f"flow {exc.name} is not valid:", err=True)
        for problem in exc.problems:
            click.echo(f"  - {problem}", err=True)
        sys.exit(1)


async def with_conn(work: Callable[[Connection], Awaitable[T]]) -> T:
    settings = load_settings(os.environ, need_twilio=False)
    async with storage_app(settings) as app, app[appkeys.PG_POOL].acquire() as conn:
        return await work(conn)


def run_or_bad_parameter(work: Coroutine[Any, Any, T], param: str) -> T:
    """Run ``work``; a subject or number that is no one is bad input (exit 2), named."""
    try:
        return asyncio.run(work)
    except InvalidIdentifier as exc:
        raise click.BadParameter(exc.message, param_hint=param) from None


def signer_of(settings: Settings) -> CheckpointSigner:
    """The ledger's checkpoint signer, as the service loads it (so both sign with one key)."""
    configured = settings.ledger_signing_key.get_secret_value() if settings.ledger_signing_key else None
    return load_signer(configured, settings.ledger_signing_key_file, settings.data_dir)
