"""The NATS JetStream publisher's cleanup context: its own one-connection pool, its task.

Listed after the webhook deliveries' context, so it stops first: a batch cut short keeps
its cursor where the last committed batch left it (those events are published again, and
JetStream drops them as repeats).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from ivr import appkeys
from ivr.integrations.jetstream import JetStreamTarget, Publisher
from ivr.ops.tasks import in_background
from ivr.time_budget import QUERY_TIMEOUT_S
from storage.postgres import create_pool

__all__ = ["jetstream_ctx"]

POOL_CLOSE_TIMEOUT_S = 10.0


async def jetstream_ctx(app: web.Application) -> AsyncIterator[None]:
    """With ``EVENTS_NATS_URL`` set, the publisher runs in the background on its own pool."""
    settings = app[appkeys.SETTINGS]
    if settings.events_nats_url is None:
        yield
        return
    target = JetStreamTarget(settings.events_nats_url, settings.events_nats_stream, settings.events_nats_subject_prefix)
    pool = await create_pool(app[appkeys.DATABASE_DSN], min_size=1, max_size=1, command_timeout_s=QUERY_TIMEOUT_S)
    try:
        publisher = Publisher(pool, target, settings.base_url, settings.event_poll_interval_s)
        app[appkeys.EVENT_PUBLISHER] = publisher
        async with in_background(publisher.run(), "nats-publisher"):
            yield
    finally:
        try:
            await asyncio.wait_for(pool.close(), POOL_CLOSE_TIMEOUT_S)
        except (TimeoutError, asyncpg.InterfaceError):
            pool.terminate()
