"""Migrations run once however often and however concurrently; evidence cannot be changed."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
import pytest

from storage.migrator import apply_migrations, available_migrations
from storage.postgres import connect
from tests.conftest import Storage, _admin, with_database


@pytest.fixture
async def empty_database(storage: Storage):
    name = "ivr_migrate_" + secrets.token_hex(4)
    await _admin(storage.database_url, f'CREATE DATABASE "{name}"')
    try:
        yield with_database(storage.database_url, name)
    finally:
        await _admin(storage.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_migrations_apply_once_even_when_run_twice(empty_database: str) -> None:
    conn = await asyncpg.connect(empty_database)
    try:
        first = await apply_migrations(conn)
        second = await apply_migrations(conn)
        recorded = await conn.fetch("SELECT version, checksum FROM schema_migrations ORDER BY version")
    finally:
        await conn.close()

    shipped = available_migrations()
    assert [m.version for m in first] == [m.version for m in shipped]
    assert second == []
    assert [(r["version"], r["checksum"]) for r in recorded] == [(m.version, m.checksum) for m in shipped]


async def test_two_processes_migrating_at_once_apply_each_file_once(empty_database: str) -> None:
    conns = [await asyncpg.connect(empty_database) for _ in range(3)]
    try:
        results = await asyncio.gather(*(apply_migrations(c) for c in conns))
        count = await conns[0].fetchval("SELECT count(*) FROM schema_migrations")
    finally:
        for conn in conns:
            await conn.close()

    assert sorted(len(r) for r in results) == [0, 0, len(available_migrations())]
    assert count == len(available_migrations())


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE consent_events SET action = 'grant'",
        "DELETE FROM consent_events",
        "TRUNCATE consent_events CASCADE",  # consent_documents (0031) refers to it
        "UPDATE keypresses SET digits = '1'",
        "DELETE FROM calls",
        "TRUNCATE call_endings CASCADE",
        "UPDATE flow_versions SET name = 'x'",
        "DELETE FROM ledger",
        "UPDATE ledger SET hash = repeat('0', 64)",
    ],
)
async def test_evidence_tables_refuse_changes_by_the_service_and_by_their_owner(
    service, twilio, storage: Storage, statement: str
) -> None:
    call = twilio.call()
    await call.dial()
    await call.keys("1", "2", "1")  # at least one row in each table touched above
    await call.hang_up()
    async with service.pool.acquire() as conn:  # the service's role: no such privilege at all
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await conn.execute(statement)
    owner = await connect(storage.database_url)  # the owner: the triggers still refuse
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await owner.execute(statement)
        assert await owner.fetchval("SELECT count(*) FROM consent_events WHERE call_sid = $1", call.call_sid) == 1
    finally:
        await owner.close()
