"""Staff accounts for the web pages (the password hash is computed by the caller)."""

from __future__ import annotations

import asyncpg

from storage.postgres import Connection

__all__ = ["create_user", "find_user"]


async def create_user(conn: Connection, username: str, role: str, password_hash: str) -> int:
    user_id: int = await conn.fetchval(
        "SELECT create_staff_user($1, $2, $3)",
        username,
        role,
        password_hash,
    )
    return user_id


async def find_user(conn: Connection, username: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, username, role, password_hash FROM staff_users WHERE username = $1 AND disabled_at IS NULL",
        username,
    )
