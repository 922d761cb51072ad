"""The asyncpg connection pool, set up the same way everywhere it is opened."""

from __future__ import annotations

import json
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

__all__ = ["SERVICE_ROLE", "Connection", "connect", "create_pool"]

# What every storage function takes: a connection of its own (``connect``) or one the
# pool lends. A string, because asyncpg's classes are generic only in its stubs.
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"


# The role the service works as: it can read and add evidence, never change it
# (created by migration 0005; migrations themselves run as the DSN's own user).
SERVICE_ROLE = "ivr_app"
# Timestamps rendered in UTC: the ledger's canonical form depends on it.
SESSION_SETTINGS = {"timezone": "UTC"}


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.execute(f"SET ROLE {SERVICE_ROLE}")


async def connect(dsn: str) -> asyncpg.Connection:
    """A single connection as the DSN's own user (migrations, audits), in UTC."""
    conn = await asyncpg.connect(dsn, server_settings=SESSION_SETTINGS)
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    return conn


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's per-release reset round trip.

    The service never changes session settings, LISTENs or holds advisory locks on
    pooled connections, so the default RESET ALL/UNLISTEN on every release is pure
    latency on the webhook path.
    """


async def create_pool(dsn: str, *, command_timeout_s: float, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_no_reset,
        server_settings=SESSION_SETTINGS,
        # The callers' time budget says how long a query may take before it is failed.
        command_timeout=command_timeout_s,
    )
    assert pool is not None
    return pool
