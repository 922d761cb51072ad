"""The delivery worker's cleanup context: its own pool and HTTP client, background tasks.

Three tasks: the worker, the scan that notes CPNI approvals deemed after the opt-out
window (so that they too are events), and the watch on revocations' honor-by dates.
Listed last in the app's cleanup contexts, so it stops first: in-flight deliveries are cut
short (their leases run out and they are sent again), then its connections close.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import structlog
from aiohttp import web
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver

from ivr import appkeys
from ivr.flow_catalog import purpose_rules
from ivr.integrations.deadline_watch import watch_deadlines
from ivr.integrations.delivery import Deliverer, DeliveryPolicy
from ivr.integrations.targets import GuardedResolver
from ivr.ops.tasks import in_background
from ivr.time_budget import QUERY_TIMEOUT_S
from storage.deemed_approvals import note_deemed_approvals
from storage.outbox import EventType
from storage.postgres import create_pool

__all__ = ["deliveries_ctx"]

log = structlog.get_logger(__name__)

POOL_CLOSE_TIMEOUT_S = 10.0


async def deliveries_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[appkeys.SETTINGS]
    policy = DeliveryPolicy(
        settings.event_delivery_timeout_s,
        settings.event_lease_s,
        settings.event_retry_schedule_s,
        settings.event_delivery_concurrency,
        settings.event_poll_interval_s,
        settings.event_allow_private_targets,
    )
    pool = await create_pool(
        app[appkeys.DATABASE_DSN], min_size=1, max_size=settings.event_pool_size, command_timeout_s=QUERY_TIMEOUT_S
    )
    try:
        # Every connection resolves afresh and refuses non-public addresses (unless allowed).
        resolver: AbstractResolver = DefaultResolver() if policy.allow_private else GuardedResolver()
        connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False, limit=policy.concurrency)
        async with aiohttp.ClientSession(connector=connector) as http:
            deliverer = Deliverer(pool, http, policy, settings.base_url)
            app[appkeys.EVENT_DELIVERER] = deliverer
            scan = _note_deemed_every(settings.event_deemed_scan_s, pool, _opt_out_windows(app))
            watch = watch_deadlines(pool, app[appkeys.REDIS], settings.business_timezone)
            async with (
                in_background(deliverer.run(), "event-deliveries"),
                in_background(scan, "deemed-approvals"),
                in_background(watch, "revocation-deadlines"),
            ):
                yield
    finally:
        await _close(pool)


def _opt_out_windows(app: web.Application) -> dict[str, int]:
    """Opt-out purposes of the deployed flows (CPNI: 30 days) that have an event type."""
    types = {t.value for t in EventType}
    rules = purpose_rules(app[appkeys.FLOWS].deployed)
    return {p: days for p, days in rules.items() if days is not None and f"{p}.deemed_granted" in types}


async def _note_deemed_every(interval_s: float, pool: asyncpg.Pool, windows: dict[str, int]) -> None:
    while True:
        for purpose, days in windows.items():
            try:
                async with pool.acquire() as conn:
                    await note_deemed_approvals(conn, purpose, days)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
                log.exception("deemed_approvals_not_noted", purpose=purpose)  # the next scan tries again
        await asyncio.sleep(interval_s)


async def _close(pool: asyncpg.Pool) -> None:
    try:
        await asyncio.wait_for(pool.close(), POOL_CLOSE_TIMEOUT_S)
    except (TimeoutError, asyncpg.InterfaceError):
        pool.terminate()
