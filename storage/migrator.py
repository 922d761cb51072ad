"""Versioned SQL migrations: applied in order, each in its own transaction, once.

Files are ``migrations/NNNN_name.sql``. Applied versions are recorded with a checksum
in ``schema_migrations``; an edited migration that was already applied is an error,
never silently skipped. A session-level advisory lock serialises concurrent runners
(two ``ivr serve`` processes starting at once), so each file runs exactly once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

from storage.postgres import Connection

__all__ = ["Migration", "MigrationError", "apply_migrations", "available_migrations"]

# Arbitrary but fixed: the advisory-lock key every runner of this schema agrees on.
MIGRATION_LOCK_KEY = 0x1C0_5E47
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql\Z")


class MigrationError(Exception):
    """The database's migration history does not match the files shipped."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def available_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("storage.migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version: {versions}")
    return found


async def apply_migrations(conn: Connection, *, through: int | None = None) -> list[Migration]:
    """Bring the schema up to date (or to version ``through``: upgrade tests, before/after
    benchmarks); return the migrations this call applied."""
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
              version     integer PRIMARY KEY,
              name        text NOT NULL,
              checksum    text NOT NULL,
              applied_at  timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
        applied = {row["version"]: row["checksum"] for row in rows}
        done = []
        for migration in available_migrations():
            if through is not None and migration.version > through:
                break
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} was changed "
                        "after it was applied; add a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            done.append(migration)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
