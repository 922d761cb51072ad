"""The delivery worker's cleanup context: its own pool and HTTP client, a background task.

Listed last in the app's cleanup contexts, so it stops first: in-flight deliveries are cut
short (their leases run out and they are sent again), then its connections close.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
from aiohttp import web
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver

from ivr import appkeys
from ivr.integrations.delivery import Deliverer, DeliveryPolicy
from ivr.integrations.targets import GuardedResolver
from ivr.ops.tasks import in_background
from ivr.time_budget import QUERY_TIMEOUT_S
from storage.postgres import create_pool

__all__ = ["deliveries_ctx"]

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
            async with in_background(deliverer.run(), "event-deliveries"):
                yield
    finally:
        await _close(pool)


async def _close(pool: asyncpg.Pool) -> None:
    try:
        await asyncio.wait_for(pool.close(), POOL_CLOSE_TIMEOUT_S)
    except (TimeoutError, asyncpg.InterfaceError):
        pool.terminate()
