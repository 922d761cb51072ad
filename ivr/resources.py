"""One cleanup context per resource; each opens in order and closes in reverse.

Order matters: the servers (embedded ones when none is configured), then the Postgres
pool (which migrates and registers flow versions), then Redis, then the call desk
that uses both. Closing runs backwards, so our Redis clients are gone before the
embedded Redis stops, and the pool is closed before the embedded Postgres stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable

import aiohttp
import structlog
from aiohttp import web
from redis.asyncio import BlockingConnectionPool, Redis

from ivr import keys
from ivr.call_control import CallControl
from ivr.call_desk import CallDesk
from ivr.flow_catalog import FlowCatalog, deployed_flows
from ivr.recording_fetcher import FetchPolicy, RecordingFetcher
from ivr.security import SignatureCheck
from ivr.transfers import TransferDesk
from ivr.twiml import TwimlRenderer
from storage.appender import appender
from storage.deferred_endings import DeferredEndings
from storage.embedded import embedded_postgres, embedded_redis
from storage.migrator import apply_migrations
from storage.postgres import connect, create_pool
from storage.rate_limits import RateLimiter
from storage.recordings import MediaStore, media_store
from storage.sessions import CallSessions
from storage.web_sessions import WebSessions

__all__ = [
    "call_desk_ctx",
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
    """Postgres from DATABASE_URL, or an embedded one under IVR_DATA_DIR."""
    settings = app[keys.SETTINGS]
    embedded = functools.partial(embedded_postgres, settings.data_dir)
    async with _server(settings.database_url, embedded, "postgres") as dsn:
        app[keys.DATABASE_DSN] = dsn
        yield


async def redis_server_ctx(app: web.Application) -> AsyncIterator[None]:
    """Redis from REDIS_URL, or an embedded one under IVR_DATA_DIR."""
    settings = app[keys.SETTINGS]
    embedded = functools.partial(embedded_redis, settings.data_dir)
    async with _server(settings.redis_url, embedded, "redis") as url:
        app[keys.REDIS_URL] = url
        yield


async def postgres_ctx(app: web.Application) -> AsyncIterator[None]:
    """The pool, after the schema is migrated and the deployed flow versions are stored."""
    owner = await connect(app[keys.DATABASE_DSN])
    try:
        applied = await apply_migrations(owner)
    finally:
        await owner.close()
    pool = await create_pool(app[keys.DATABASE_DSN], max_size=app[keys.SETTINGS].pg_pool_size)
    try:
        if applied:
            log.info("migrations_applied", versions=[m.version for m in applied])
        settings = app[keys.SETTINGS]
        catalog = FlowCatalog(deployed_flows(settings.flows_dir), settings.number_flows)
        await catalog.register(pool)
        app[keys.APPLIED_MIGRATIONS] = applied
        app[keys.PG_POOL] = pool
        app[keys.FLOWS] = catalog
        yield
    finally:
        await pool.close()


# A webhook makes a few Redis round trips. In a burst (a sibling process lost and all its
# calls arriving here) more may be in flight than there are connections; redis-py's
# default pool then fails the webhook at once, so the caller hears "nothing recorded".
# Waiting a little for a connection instead stays well inside Twilio's 15 s.
REDIS_MAX_CONNECTIONS = 100
REDIS_CONNECTION_WAIT_S = 4.0


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    pool = BlockingConnectionPool.from_url(
        app[keys.REDIS_URL],
        decode_responses=True,
        max_connections=REDIS_MAX_CONNECTIONS,
        timeout=REDIS_CONNECTION_WAIT_S,
    )
    redis = Redis.from_pool(pool)  # the client owns the pool: closing it closes the pool
    try:
        app[keys.REDIS] = redis
        app[keys.SESSIONS] = CallSessions(redis)
        app[keys.WEB_SESSIONS] = WebSessions(redis)
        app[keys.RATE_LIMITER] = RateLimiter(redis, app[keys.SETTINGS].rate_limit_namespace)
        yield
    finally:
        await redis.aclose()


async def recordings_ctx(app: web.Application) -> AsyncIterator[None]:
    """The background worker that fetches and keeps recordings (one per process)."""
    settings = app[keys.SETTINGS]
    store: MediaStore = media_store(settings.recording_store, settings.data_dir)
    policy = FetchPolicy(
        settings.recording_fetch_timeout_s,
        settings.recording_retry_base_s,
        settings.recording_max_attempts,
        settings.recording_callback_grace_s,
    )
    async with aiohttp.ClientSession() as http:
        fetcher = RecordingFetcher(
            app[keys.PG_POOL],
            http,
            store,
            policy,
            api_base_url=settings.twilio_api_base_url,
            auth=(settings.twilio_account_sid, settings.auth_token),
        )
        app[keys.RECORDING_FETCHER] = fetcher
        app[keys.MEDIA_STORE] = store
        task = asyncio.create_task(fetcher.run(), name="recording-fetcher")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def transfers_ctx(app: web.Application) -> AsyncIterator[None]:
    """Moving live calls through Twilio's REST API, and the agents' transfer desk."""
    settings = app[keys.SETTINGS]
    calls = CallControl(settings.twilio_account_sid, settings.auth_token, settings.twilio_api_base_url)
    app[keys.CALL_CONTROL] = calls
    app[keys.TRANSFER_DESK] = TransferDesk(
        app[keys.PG_POOL], app[keys.REDIS], calls, set(app[keys.FLOWS].deployed), settings.base_url, app[keys.METRICS]
    )
    try:
        yield
    finally:
        await calls.close()


# How often a process looks for call endings that waited for Postgres.
DEFERRED_ENDINGS_EVERY_S = 5.0


async def _store_deferred_endings(desk: CallDesk) -> None:
    while True:
        await asyncio.sleep(DEFERRED_ENDINGS_EVERY_S)
        try:
            stored = await desk.store_deferred_endings()
        except Exception:  # noqa: BLE001 - Redis away too: the next round tries again
            log.exception("deferred_endings_not_stored")
            continue
        if stored:
            log.info("deferred_endings_stored", count=stored)


async def call_desk_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    app[keys.SIGNATURES] = SignatureCheck(settings.auth_token, settings.base_url)
    renderer = TwimlRenderer(settings.base_url, {"agents": settings.agent_target})
    async with appender(app[keys.PG_POOL]) as writing:
        app[keys.CALL_DESK] = CallDesk(
            app[keys.PG_POOL],
            app[keys.SESSIONS],
            app[keys.FLOWS],
            renderer,
            app[keys.RECORDING_FETCHER].wake,
            app[keys.TRANSFER_DESK],
            app[keys.METRICS],
            appender=writing,
            deferred=DeferredEndings(app[keys.REDIS]),
        )
        retrying = asyncio.create_task(_store_deferred_endings(app[keys.CALL_DESK]))
        try:
            yield
        finally:
            retrying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await retrying
