"""The ``ivr`` command: serve, migrate, flows, simulate."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import aiohttp
import asyncpg
import click
from aiohttp import web

from flows.loader import FlowDefinitionError
from flows.model import Flow
from flows.script import render_script
from ivr import keys
from ivr.app import create_app
from ivr.customer_import import parse_customers, with_hashed_pins
from ivr.exporting import ReceiptWriter
from ivr.flow_catalog import DEFAULT_FLOW, deployed_flows, purpose_rules
from ivr.kdf import hash_secret
from ivr.logs import AccessLog, configure_logging
from ivr.receipts import build_receipt, withdrawal_codes
from ivr.resources import postgres_ctx, postgres_server_ctx
from ivr.routes import STATUS_PATH, VOICE_PATH
from ivr.settings import ConfigError, Settings
from ivr.simulator import SILENCE, FakeTwilio, Twiml, simulate_call
from ivr.workers import supervise
from storage.customers import upsert_customer
from storage.exports import events_for_receipts
from storage.ledger import chained
from storage.postgres import connect
from storage.retention import active_holds, hold, plan_removal, remove
from storage.state import ConsentState, consent_state
from storage.tokens import ROLES, create_token, list_tokens, revoke_token
from storage.users import create_user
from storage.verify import Head, Report, ledger_head, verify_ledger

__all__ = ["main"]

DEV_TOKEN_FILE = "dev-twilio-auth-token"
T = TypeVar("T")


@click.group()
def main() -> None:
    """Consent IVR: capture, prove and look up callers' consent over Twilio Voice."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Processes on the port.")
@click.option("--reuse-port", is_flag=True, hidden=True, help="Share the port with sibling workers.")
def serve(host: str, port: int, workers: int, reuse_port: bool) -> None:
    """Migrate the database, then answer Twilio's webhooks until SIGINT/SIGTERM."""
    settings = _load_settings(os.environ, port=port)
    configure_logging(settings.log_level, settings.effective_log_format)
    if workers > 1:
        click.echo(_banner(settings, None, host, port) + f"\n{workers} worker processes share the port.")
        env = dict(os.environ) | {"PUBLIC_BASE_URL": settings.base_url, "TWILIO_AUTH_TOKEN": settings.auth_token}
        sys.exit(supervise(workers, host, port, env, settings.data_dir))
    app = create_app(settings)

    async def announce(app: web.Application) -> None:
        click.echo(_banner(settings, app, host, port))

    if not reuse_port:  # a lone process introduces itself; workers leave it to their supervisor
        app.on_startup.append(announce)
    asyncio.run(_serve_until_signalled(app, host, port, reuse_port))


# Twilio waits 15 s for a webhook's answer, so a handler still running after that answers
# no one. aiohttp gives in-flight handlers shutdown_timeout to finish and then, before
# cancelling them, shutdown_timeout again: half of Twilio's budget each.
TWILIO_PATIENCE_S = 15.0
SHUTDOWN_TIMEOUT_S = TWILIO_PATIENCE_S / 2


async def _serve_until_signalled(app: web.Application, host: str, port: int, reuse_port: bool) -> None:
    """Serve until SIGINT/SIGTERM, then drain: stop listening, let every webhook already
    accepted finish (bounded), and only then run the cleanup contexts that close the pools.

    Not ``web.run_app``: it stops from a cancelled task, where a drain that reaches its
    timeout aborts the cleanup, and a second signal (Ctrl-C pressed again, or a terminal's
    SIGINT on top of the one a supervisor forwards) kills the handlers mid-answer. Here
    the drain always runs to its end and further signals change nothing.
    """
    runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_TIMEOUT_S, keepalive_timeout=75, access_log_class=AccessLog)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await web.TCPSite(runner, host, port, reuse_port=reuse_port or None).start()
        await stop.wait()
    finally:
        await runner.cleanup()


@main.command()
def migrate() -> None:
    """Apply pending database migrations (safe to run twice, or from two hosts at once)."""
    settings = _load_settings(os.environ, need_twilio=False)
    configure_logging(settings.log_level, settings.effective_log_format)
    applied = asyncio.run(_migrate(settings))
    click.echo(f"schema up to date; applied now: {', '.join(applied) or 'nothing'}")


@main.group()
def flows() -> None:
    """Review and check the voice flows this service serves."""


@flows.command("show")
@click.argument("name", default=DEFAULT_FLOW)
def flows_show(name: str) -> None:
    """Print flow NAME as a readable script: every prompt, key and branch, with its version."""
    deployed = _deployed_or_exit()
    if name not in deployed:
        raise click.ClickException(f"no flow named {name!r}; deployed: {', '.join(sorted(deployed))}")
    click.echo(render_script(deployed[name]), nl=False)


@flows.command("check")
def flows_check() -> None:
    """Validate every deployed definition (targets, reachability, translations, placeholders)."""
    for flow in _deployed_or_exit().values():
        click.echo(
            f"ok  {flow.name}  {flow.version}  ({len(flow.steps)} steps, languages: {', '.join(flow.languages)})"
        )


def _deployed_or_exit() -> dict[str, Flow]:
    settings = _load_settings(os.environ, need_twilio=False)
    try:
        return deployed_flows(settings.flows_dir)
    except FlowDefinitionError as exc:
        click.echo(f"flow {exc.name} is not valid:", err=True)
        for problem in exc.problems:
            click.echo(f"  - {problem}", err=True)
        sys.exit(1)


@main.command()
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
    settings = _load_settings(os.environ, need_twilio=False)
    base_url = url or settings.public_base_url or "http://127.0.0.1:8080"
    token = settings.auth_token if settings.twilio_auth_token else _dev_auth_token(settings.data_dir)
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


@main.command()
@click.option("--head", "head_only", is_flag=True, help="Only print the current head (hash and count) to keep.")
@click.option("--since-head", metavar="HASH", help="Also check that a head kept earlier is still in the chain.")
def verify(head_only: bool, since_head: str | None) -> None:
    """Recompute the evidence ledger's hash chain; exit 1 naming the first bad record."""
    settings = _load_settings(os.environ, need_twilio=False)
    configure_logging(settings.log_level, settings.effective_log_format)

    async def run() -> Report | Head:
        async with _storage(settings) as app, app[keys.PG_POOL].acquire() as conn:
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


@main.command()
@click.argument("subject")
@click.option("--as-of", type=click.DateTime(), help="The state at this UTC time instead of now.")
def consent(subject: str, as_of: datetime | None) -> None:
    """Print SUBJECT's consent (an E.164 number or an account number) for every purpose."""
    settings = _load_settings(os.environ, need_twilio=False)
    configure_logging(settings.log_level, settings.effective_log_format)
    rules = purpose_rules(_deployed_or_exit())
    when = as_of.replace(tzinfo=UTC) if as_of else datetime.now(UTC)

    async def run() -> list[ConsentState]:
        async with _storage(settings) as app, app[keys.PG_POOL].acquire() as conn:
            return [
                await consent_state(conn, subject, purpose, as_of=when, opt_out_days=days)
                for purpose, days in sorted(rules.items())
            ]

    click.echo(f"{subject} as of {when.isoformat()}")
    for state in asyncio.run(run()):
        since = f" since {state.since.isoformat()}" if state.since else ""
        decided = f" (event {state.event_id})" if state.event_id else ""
        honor = f" honor by {state.honor_by.isoformat()}" if state.honor_by else ""
        click.echo(f"  {state.purpose:<18} {state.status.value:<15}{since}{decided}{honor}")


@main.command()
@click.option("--phone", "subject", help="Only this subject (an E.164 number or an account number).")
@click.option("--since", type=click.DateTime(), help="Only decisions from this UTC time on.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
def export(subject: str | None, since: datetime | None, fmt: str) -> None:
    """Stream decisions with their receipts to standard output (JSON lines or CSV)."""
    settings = _load_settings(os.environ, need_twilio=False)
    configure_logging(settings.log_level, settings.effective_log_format)
    flows = _deployed_or_exit()
    purposes = {(name, key): p for name, flow in flows.items() for key, p in flow.purposes.items()}
    codes = withdrawal_codes(flows.values())
    writer = ReceiptWriter(sys.stdout, fmt)

    async def run() -> int:
        async with _storage(settings) as app, app[keys.PG_POOL].acquire() as conn, conn.transaction(readonly=True):
            count = 0
            async for row in events_for_receipts(conn, subject=subject, since=since and since.replace(tzinfo=UTC)):
                purpose = purposes.get((row["flow_name"], row["purpose"]))  # the words of the flow that asked
                writer.write(build_receipt(row, settings.controller, purpose, codes.get(row["purpose"])))
                count += 1
            return count

    exported = asyncio.run(run())
    click.echo(f"exported {exported} decision(s)", err=True)


@main.group()
def retention() -> None:
    """Remove evidence past its retention period (never under a legal hold)."""


@retention.command("run")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@click.option("--as-of", type=click.DateTime(), help="Plan as if it were this UTC time (with --dry-run, a forecast).")
@click.option("--reason", default="retention period passed", show_default=True)
def retention_run(dry_run: bool, as_of: datetime | None, reason: str) -> None:
    """Remove whole calls whose evidence is past retention, leaving a chained tombstone."""
    settings = _load_settings(os.environ, need_twilio=False)
    configure_logging(settings.log_level, settings.effective_log_format)
    when = as_of.replace(tzinfo=UTC) if as_of else datetime.now(UTC)
    periods = settings.retention_periods

    async def run() -> tuple[int, int]:
        async with _storage(settings) as app:
            owner = await connect(app[keys.DATABASE_DSN])  # only the tables' owner may remove
            try:
                async with chained(owner) as chain:
                    plan = await plan_removal(owner, periods, settings.retention_days, when)
                    if dry_run or not plan.rows:
                        return len(plan.call_sids), len(plan.rows)
                    removed = await remove(chain, plan, actor=getpass.getuser(), reason=reason, periods=periods)
                    return len(plan.call_sids), removed
            finally:
                await owner.close()

    calls, rows = asyncio.run(run())
    verb = "would remove" if dry_run else "removed"
    click.echo(f"{verb} {calls} call(s), {rows} evidence row(s) (as of {when.isoformat()})")


@main.group("hold")
def holds() -> None:
    """Legal holds: a subject on hold keeps all its evidence, whatever the retention."""


@holds.command("add")
@click.option("--subject", required=True, help="An E.164 number or an account number.")
@click.option("--reason", required=True)
def hold_add(subject: str, reason: str) -> None:
    _hold(subject, "place", reason)
    click.echo(f"hold placed on {subject}")


@holds.command("remove")
@click.option("--subject", required=True)
@click.option("--reason", required=True)
def hold_remove(subject: str, reason: str) -> None:
    _hold(subject, "release", reason)
    click.echo(f"hold released on {subject}")


@holds.command("list")
def hold_list() -> None:
    settings = _load_settings(os.environ, need_twilio=False)

    async def run() -> list:
        async with _storage(settings) as app, app[keys.PG_POOL].acquire() as conn:
            return [h for h in await active_holds(conn) if h["action"] == "place"]

    for held in asyncio.run(run()):
        click.echo(f"{held['subject']}  since {held['at'].isoformat()}  by {held['actor']}: {held['reason']}")


def _hold(subject: str, action: str, reason: str) -> None:
    settings = _load_settings(os.environ, need_twilio=False)
    configure_logging(settings.log_level, settings.effective_log_format)

    async def run() -> None:
        async with _storage(settings) as app, app[keys.PG_POOL].acquire() as conn, chained(conn) as chain:
            await hold(chain, subject, action, reason, getpass.getuser())

    asyncio.run(run())


@main.group()
def tokens() -> None:
    """API tokens for agents, staff and admins (stored only as hashes)."""


@tokens.command("create")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--name", required=True, help="Whose token this is (shown in evidence and logs).")
def tokens_create(role: str, name: str) -> None:
    """Create a token and print it once; it cannot be shown again."""
    token, secret = asyncio.run(_with_conn(lambda conn: create_token(conn, name, role)))
    click.echo(secret)
    click.echo(f"token #{token.id} for {name} ({role}); keep it now, it is not stored", err=True)


@tokens.command("list")
def tokens_list() -> None:
    for token in asyncio.run(_with_conn(list_tokens)):
        state = f"revoked {token.revoked_at.isoformat()}" if token.revoked_at else "live"
        click.echo(f"#{token.id}  {token.role:<6} {token.name}  created {token.created_at.isoformat()}  {state}")


@tokens.command("revoke")
@click.argument("token_id", type=int)
def tokens_revoke(token_id: int) -> None:
    """Revoke token #TOKEN_ID; the next request with it is refused."""
    if not asyncio.run(_with_conn(lambda conn: revoke_token(conn, token_id))):
        raise click.ClickException(f"no live token #{token_id}")
    click.echo(f"token #{token_id} revoked")


async def _with_conn(work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    settings = _load_settings(os.environ, need_twilio=False)
    async with _storage(settings) as app, app[keys.PG_POOL].acquire() as conn:
        return await work(conn)


@main.group()
def users() -> None:
    """Staff accounts for the web pages (password sign-in)."""


@users.command("create")
@click.option("--name", "username", required=True, help="Username (a-z, 0-9, . _ -).")
@click.option("--role", type=click.Choice(["staff", "admin"]), default="staff", show_default=True)
@click.password_option(help="Asked for when not given.")
def users_create(username: str, role: str, password: str) -> None:
    """Create a staff account; its password is kept only as a salted scrypt hash."""
    if len(password) < 12:
        raise click.ClickException("use a password of at least 12 characters")
    user_id = asyncio.run(_with_conn(lambda conn: create_user(conn, username, role, hash_secret(password))))
    click.echo(f"user #{user_id} {username} ({role}) created")


@main.group()
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
    settings = _load_settings(os.environ, need_twilio=False)
    configure_logging(settings.log_level, settings.effective_log_format)
    loaded = with_hashed_pins(rows)

    async def store() -> None:
        async with _storage(settings) as app, app[keys.PG_POOL].acquire() as conn, conn.transaction():
            for customer in loaded:
                await upsert_customer(conn, customer)

    asyncio.run(store())
    with_pin = sum(1 for c in loaded if c.pin_hash)
    click.echo(f"imported {len(loaded)} customer(s), {with_pin} with a PIN, from {path}")


@contextlib.asynccontextmanager
async def _storage(settings: Settings) -> AsyncIterator[web.Application]:
    """Postgres alone, migrated (an embedded one is started and stopped if none is configured)."""
    app = web.Application()
    app[keys.SETTINGS] = settings
    app.cleanup_ctx.extend([postgres_server_ctx, postgres_ctx])
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        yield app
    finally:
        await runner.cleanup()


async def _migrate(settings: Settings) -> list[str]:
    async with _storage(settings) as app:
        return [f"{m.version:04d}_{m.name}" for m in app[keys.APPLIED_MIGRATIONS]]


def _load_settings(environ: Mapping[str, str], *, port: int = 8080, need_twilio: bool = True) -> Settings:
    try:
        env = dict(environ)
        base = Settings.from_env(env, need_twilio=False)
        if base.dev_mode and need_twilio:
            env.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{port}")
            if not env.get("TWILIO_AUTH_TOKEN"):
                env["TWILIO_AUTH_TOKEN"] = _dev_auth_token(base.data_dir)
        return Settings.from_env(env, need_twilio=need_twilio)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        sys.exit(2)


def _dev_auth_token(data_dir: Path) -> str:
    """A stable, random stand-in for Twilio's auth token, kept under the data directory."""
    path = data_dir / DEV_TOKEN_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(16) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def _banner(settings: Settings, app: web.Application | None, host: str, port: int) -> str:
    lines = [
        f"Consent IVR listening on http://{host}:{port} (public URL {settings.base_url})",
        "Point your Twilio number at:",
        f"  A call comes in     POST {settings.base_url}{VOICE_PATH}",
        f"  Call status changes POST {settings.base_url}{STATUS_PATH}",
        "Postgres: "
        + ("from DATABASE_URL" if settings.database_url else f"embedded, data in {settings.data_dir / 'postgres'}"),
        "Redis:    " + ("from REDIS_URL" if settings.redis_url else f"embedded, data in {settings.data_dir / 'redis'}"),
    ]
    if settings.dev_mode:
        lines += [
            "",
            "WARNING: development mode (IVR_DEV=1). Not for real calls.",
            f"  TWILIO_AUTH_TOKEN: {settings.auth_token}  (kept in {settings.data_dir / DEV_TOKEN_FILE} unless set)",
            "  Webhook signatures are still checked: sign test requests with this token.",
        ]
    return "\n".join(lines)
