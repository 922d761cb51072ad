"""The asyncpg connection pool, set up the same way everywhere it is opened."""

from __future__ import annotations

import json

import asyncpg

__all__ = ["create_pool"]


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's per-release reset round trip.

    The service never changes session settings, LISTENs or holds advisory locks on
    pooled connections, so the default RESET ALL/UNLISTEN on every release is pure
    latency on the webhook path.
    """


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_no_reset,
        # A webhook must answer within Twilio's 15 s; a query stuck longer than this
        # is better failed (the caller hears "nothing was recorded") than waited on.
        command_timeout=5,
    )
    assert pool is not None
    return pool
