"""Staff accounts for the web pages (the password hash is computed by the caller).

The service's role cannot write ``staff_users``: every change goes through a function
that does only that change (migrations 0016 and 0018). Disabling a user or setting their
password moves their session generation on, which ends every session opened before.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.postgres import Connection

__all__ = [
    "StaffUser",
    "create_user",
    "disable_user",
    "enable_user",
    "find_user",
    "set_password",
    "user_session_live",
]


@dataclass(frozen=True)
class StaffUser:
    """An enabled staff account, as sign-in needs it."""

    id: int
    username: str
    role: str
    password_hash: str
    session_generation: int  # sessions opened under another generation have ended


async def create_user(conn: Connection, username: str, role: str, password_hash: str) -> int:
    user_id: int = await conn.fetchval(
        "SELECT create_staff_user($1, $2, $3)",
        username,
        role,
        password_hash,
    )
    return user_id


async def find_user(conn: Connection, username: str) -> StaffUser | None:
    """The enabled user of that name, or None (unknown or disabled)."""
    row = await conn.fetchrow(
        "SELECT id, username, role, password_hash, session_generation FROM staff_users"
        " WHERE username = $1 AND disabled_at IS NULL",
        username,
    )
    return StaffUser(**dict(row)) if row else None


async def user_session_live(conn: Connection, username: str, generation: int) -> bool:
    """Whether a session opened by ``username`` under ``generation`` may still be used
    (one lookup on the username's unique index)."""
    live: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT FROM staff_users"
        " WHERE username = $1 AND disabled_at IS NULL AND session_generation = $2)",
        username,
        generation,
    )
    return live


async def disable_user(conn: Connection, username: str) -> bool:
    """Disable the user and end their sessions; False if no enabled user has that name."""
    disabled: bool = await conn.fetchval("SELECT disable_staff_user($1)", username)
    return disabled


async def enable_user(conn: Connection, username: str) -> bool:
    """Let a disabled user sign in again; False if no disabled user has that name."""
    enabled: bool = await conn.fetchval("SELECT enable_staff_user($1)", username)
    return enabled


async def set_password(conn: Connection, username: str, password_hash: str) -> bool:
    """Set the user's password and end their sessions; False if no user has that name."""
    changed: bool = await conn.fetchval("SELECT set_staff_password($1, $2)", username, password_hash)
    return changed
