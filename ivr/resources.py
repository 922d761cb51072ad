"""One cleanup context per resource; each opens in order and closes in reverse.

Order matters: the servers (embedded ones when none is configured), then the Postgres
pool (which migrates and registers flow versions), then Redis, then what uses both
(the voice door's call desk comes last, from ``ivr.voice.context``). Closing runs
backwards, so our Redis clients are gone before the embedded Redis stops, and the pool
is closed before the embedded Postgres stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable

import aiohttp
import asyncpg
import structlog
from aiohttp import web
from redis.asyncio import BlockingConnectionPool, Redis

from ivr import appkeys
from ivr.call_control import CallControl
from ivr.evidence.call_evidence import CallEvidence
from ivr.evidence.checkpoints import Checkpointer, CheckpointStore, load_signer
from ivr.evidence.recording_fetcher import FetchPolicy, RecordingFetcher
from ivr.evidence.recording_keys import recording_store
from ivr.evidence.timestamps import Timestamper
from ivr.flow_catalog import FlowCatalog, deployed_flows
from ivr.ops.tasks import in_background
from ivr.time_budget import CALL_LOCK_WAIT_S, QUERY_TIMEOUT_S, REDIS_CONNECTION_WAIT_S
from ivr.transfer_desk import TransferDesk
from ivr.transfer_feed import StreamLimits, transfer_feed
from storage.embedded import embedded_postgres, embedded_redis
from storage.migrator import apply_migrations
from storage.postgres import as_service_role, check_service_role, connect, create_pool
from storage.rate_limits import RateLimiter
from storage.recordings import MediaStore
from storage.sessions import CallSessions
from storage.web_sessions import WebSessions

__all__ = [
    "checkpoints_ctx",
    "evidence_ctx",
    "recordings_ctx",
    "postgres_ctx",
    "postgres_server_ctx",
    "redis_ctx",
    "redis_server_ctx",
    "transfers_ctx",
]

log = structlog.get_logger(__name__)


@contextlib.asynccontextmanager
async def _server(
    configured: str | None, embedded: Callable[[], contextlib.AbstractContextManager[str]], what: str
) -> AsyncIterator[str]:
    """The configured server's URL, or an embedded server's, started here and stopped on exit."""
    if configured is not None:
        yield configured
        return
    with contextlib.ExitStack() as stack:
        url = await asyncio.to_thread(stack.enter_context, embedded())
        log.info(f"embedded_{what}_started")
        try:
            yield url
        finally:
            await asyncio.to_thread(stack.close)


async def postgres_server_ctx(app: web.Application) -> AsyncIterator[None]:
    """Postgres from MIGRATION_DATABASE_URL / DATABASE_URL, or an embedded one under IVR_DATA_DIR.

    Two logins: the owner's (migrations, retention, the customer directory) and the
    service's own. With only DATABASE_URL (or none) that URL is the owner and the service
    logs in as ivr_app on the same server: two roles, one server, as in dev and tests.
    """
    settings = app[appkeys.SETTINGS]
    embedded = functools.partial(embedded_postgres, settings.data_dir)
    configured_owner = settings.migration_database_url or settings.database_url
    async with _server(configured_owner, embedded, "postgres") as owner_dsn:
        app[appkeys.OWNER_DSN] = owner_dsn
        separate = settings.migration_database_url is not None
        service_dsn = settings.database_url if separate and settings.database_url else as_service_role(owner_dsn)
        app[appkeys.DATABASE_DSN] = service_dsn
        yield


async def redis_server_ctx(app: web.Application) -> AsyncIterator[None]:
    """Redis from REDIS_URL, or an embedded one under IVR_DATA_DIR."""
    settings = app[appkeys.SETTINGS]
    embedded = functools.partial(embedded_redis, settings.data_dir)
    async with _server(settings.redis_url, embedded, "redis") as url:
        app[appkeys.REDIS_URL] = url
        yield


async def postgres_ctx(app: web.Application) -> AsyncIterator[None]:
    """The pool, after the schema is migrated and the deployed flow versions are stored."""
    owner = await connect(app[appkeys.OWNER_DSN])
    try:
        applied = await apply_migrations(owner)
    finally:
        await owner.close()
    pool = await create_pool(
        app[appkeys.DATABASE_DSN], max_size=app[appkeys.SETTINGS].pg_pool_size, command_timeout_s=QUERY_TIMEOUT_S
    )
    try:
        async with pool.acquire() as conn:
            await check_service_role(conn)
        if applied:
            log.info("migrations_applied", versions=[m.version for m in applied])
        settings = app[appkeys.SETTINGS]
        catalog = FlowCatalog(deployed_flows(settings.flows_dir), settings.number_flows)
        await catalog.register(pool)
        app[appkeys.APPLIED_MIGRATIONS] = applied
        app[appkeys.PG_POOL] = pool
        app[appkeys.FLOWS] = catalog
        yield
    finally:
        await _close(pool)


# Closing waits for every connection to be released; one held by work that never ends
# (or a close already cut short) must not hold the process's shutdown forever.
POOL_CLOSE_TIMEOUT_S = 10.0


async def _close(pool: asyncpg.Pool) -> None:
    try:
        await asyncio.wait_for(pool.close(), POOL_CLOSE_TIMEOUT_S)
    except (TimeoutError, asyncpg.InterfaceError):
        log.warning("postgres_pool_terminated")
        pool.terminate()


# A webhook makes a few Redis round trips. In a burst more may be in flight than there
# are connections; redis-py's default pool would then fail the webhook at once, so a
# blocking pool waits (ivr.time_budget.REDIS_CONNECTION_WAIT_S) for one instead.
REDIS_MAX_CONNECTIONS = 100


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    pool = BlockingConnectionPool.from_url(
        app[appkeys.REDIS_URL],
        decode_responses=True,
        max_connections=REDIS_MAX_CONNECTIONS,
        timeout=REDIS_CONNECTION_WAIT_S,
    )
    redis = Redis.from_pool(pool)  # the client owns the pool: closing it closes the pool
    try:
        app[appkeys.REDIS] = redis
        app[appkeys.SESSIONS] = CallSessions(redis, lock_wait_s=CALL_LOCK_WAIT_S)
        app[appkeys.WEB_SESSIONS] = WebSessions(redis)
        app[appkeys.RATE_LIMITER] = RateLimiter(redis, app[appkeys.SETTINGS].rate_limit_namespace)
        yield
    finally:
        await redis.aclose()


async def recordings_ctx(app: web.Application) -> AsyncIterator[None]:
    """The background worker that fetches and keeps recordings (one per process)."""
    settings = app[appkeys.SETTINGS]
    store: MediaStore = recording_store(settings)  # sealing with RECORDING_KEY (or the key file)
    policy = FetchPolicy(
        settings.recording_fetch_timeout_s,
        settings.recording_retry_base_s,
        settings.recording_max_attempts,
        settings.recording_callback_grace_s,
        settings.recording_max_bytes,
    )
    async with aiohttp.ClientSession() as http:
        fetcher = RecordingFetcher(
            app[appkeys.PG_POOL],
            http,
            store,
            policy,
            api_base_url=settings.twilio_api_base_url,
            auth=(settings.twilio_account_sid, settings.auth_token),
        )
        app[appkeys.RECORDING_FETCHER] = fetcher
        app[appkeys.MEDIA_STORE] = store
        async with in_background(fetcher.run(), "recording-fetcher"):
            yield


async def transfers_ctx(app: web.Application) -> AsyncIterator[None]:
    """Moving live calls through Twilio's REST API, the agents' transfer desk, and the
    process's one subscriber to transfer news (its own Redis connection, not the pool's)."""
    settings = app[appkeys.SETTINGS]
    calls = CallControl(settings.twilio_account_sid, settings.auth_token, settings.twilio_api_base_url)
    limits = StreamLimits(settings.transfer_streams_per_token, settings.transfer_streams_per_process)
    try:
        async with transfer_feed(app[appkeys.REDIS_URL], limits) as feed:
            app[appkeys.CALL_CONTROL] = calls
            app[appkeys.TRANSFER_FEED] = feed
            app[appkeys.TRANSFER_DESK] = TransferDesk(
                app[appkeys.PG_POOL],
                app[appkeys.REDIS],
                calls,
                set(app[appkeys.FLOWS].deployed),
                settings.base_url,
                app[appkeys.METRICS],
                settings.return_destinations,
                feed,
            )
            yield
    finally:
        await calls.close()


async def evidence_ctx(app: web.Application) -> AsyncIterator[None]:
    """Reading a call's evidence for staff (API and pages alike), access-logged."""
    settings = app[appkeys.SETTINGS]
    app[appkeys.CALL_EVIDENCE] = CallEvidence(
        app[appkeys.PG_POOL], settings, app[appkeys.FLOWS], app[appkeys.MEDIA_STORE], app[appkeys.CHECKPOINTER]
    )
    yield


async def checkpoints_ctx(app: web.Application) -> AsyncIterator[None]:
    """Signed checkpoints of the ledger every CHECKPOINT_INTERVAL_S while it grows, and at shutdown."""
    settings = app[appkeys.SETTINGS]
    signer = load_signer(
        settings.ledger_signing_key.get_secret_value() if settings.ledger_signing_key else None,
        settings.ledger_signing_key_file,
        settings.data_dir,
    )
    stamps = Timestamper(settings.tsa_url) if settings.tsa_url else None
    checkpointer = Checkpointer(app[appkeys.PG_POOL], signer, CheckpointStore(settings.checkpoints_dir), stamps)
    app[appkeys.CHECKPOINT_SIGNER] = signer
    app[appkeys.CHECKPOINTER] = checkpointer
    try:
        async with in_background(_checkpoint_every(settings.checkpoint_interval_s, checkpointer), "checkpoints"):
            yield
    finally:
        # The last entries of this run, signed before it goes (briefly: shutdown must not hang).
        await _checkpoint_now(checkpointer, SHUTDOWN_CHECKPOINT_TIMEOUT_S)


async def _checkpoint_every(interval_s: float, checkpointer: Checkpointer) -> None:
    while True:
        await asyncio.sleep(interval_s)
        await _checkpoint_now(checkpointer, CHECKPOINT_TIMEOUT_S)


async def _checkpoint_now(checkpointer: Checkpointer, timeout_s: float) -> None:
    try:
        await asyncio.wait_for(checkpointer.now(), timeout_s)
    except Exception:  # noqa: BLE001 - Postgres or the directory away: the next round tries again
        log.exception("checkpoint_not_made")


# A checkpoint reads only what the ledger grew by since the last one; a minute is plenty
# even after a long outage, and keeps a stuck one from holding up shutdown.
CHECKPOINT_TIMEOUT_S = 60.0
SHUTDOWN_CHECKPOINT_TIMEOUT_S = 10.0
