"""The asyncpg connection pool, set up the same way everywhere it is opened."""

from __future__ import annotations

import json
from typing import TypeAlias
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

__all__ = [
    "SERVICE_ROLE",
    "Connection",
    "RoleTooStrong",
    "as_service_role",
    "check_service_role",
    "connect",
    "create_pool",
]

# What every storage function takes: a connection of its own (``connect``) or one the
# pool lends. A string, because asyncpg's classes are generic only in its stubs.
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"


# The role the service logs in as: it can read and add evidence, never change it, and
# nothing it holds escalates (migrations 0005 and 0016; migrations run as the owner).
SERVICE_ROLE = "ivr_app"
# Timestamps rendered in UTC: the ledger's canonical form depends on it.
SESSION_SETTINGS = {"timezone": "UTC"}


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


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


def as_service_role(owner_dsn: str) -> str:
    """The owner's DSN logging in as the service role instead (same server and database).

    Without a password: for servers that trust local logins (dev, tests, the embedded
    Postgres). Elsewhere the operator gives the service its own DATABASE_URL.
    """
    parts = urlsplit(owner_dsn)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(SERVICE_ROLE)}@{host}"))


class RoleTooStrong(Exception):
    """The service's database login could do more than add evidence (an owner, a superuser)."""


async def check_service_role(conn: Connection) -> None:
    """Refuse to serve with a login that could rewrite or remove evidence."""
    row = await conn.fetchrow(
        """
        SELECT r.rolname, r.rolsuper, pg_has_role(current_user, c.relowner, 'USAGE') AS owns_evidence,
               pg_has_role(current_user, $1, 'USAGE') AS is_service
        FROM pg_roles r, pg_class c
        WHERE r.rolname = current_user AND c.oid = 'ledger'::regclass
        """,
        SERVICE_ROLE,
    )
    assert row is not None  # the ledger exists once migrated, and current_user is a role
    if row["rolsuper"] or row["owns_evidence"]:
        raise RoleTooStrong(
            f"DATABASE_URL logs in as {row['rolname']}, which can rewrite evidence; give the service a "
            f"login of role {SERVICE_ROLE} and put the owner in MIGRATION_DATABASE_URL"
        )
    if not row["is_service"]:
        raise RoleTooStrong(f"DATABASE_URL logs in as {row['rolname']}, which is not a member of {SERVICE_ROLE}")
