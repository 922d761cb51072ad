"""Group commit: concurrent webhooks' evidence shares statements; one bad row fails only its own."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime

import asyncpg
import pytest

from flows.loader import builtin_flows
from flows.model import CallState, KeypressFact, KeypressOutcome
from ivr.time_budget import POOL_ACQUIRE_S, QUERY_TIMEOUT_S
from storage.appender import appender
from storage.evidence import CallRecord, call_row, keypress_row
from storage.ledger import EvidenceRow, append
from storage.migrator import apply_migrations
from storage.postgres import connect, create_pool
from tests.helpers import verify

FLOW = builtin_flows()["consent-line"]


def a_call() -> list:
    sid = "CA" + secrets.token_hex(16)
    state = CallState(sid, "+14155550100", "+18005550199", FLOW.name, FLOW.version, "en", "main_menu")
    press = KeypressFact(0, "main_menu", "2", "", KeypressOutcome.VALID, "Press 2.", "en")
    return [
        call_row(CallRecord(sid, "AC1", state.caller, state.dialed, "inbound"), FLOW),
        keypress_row(state, press, "tok", datetime.now(UTC)),
    ]


async def test_concurrent_appends_share_statements_and_a_bad_row_fails_alone(own_storage) -> None:
    owner = await connect(own_storage.database_url)
    await apply_migrations(owner)
    await owner.close()
    pool = await create_pool(own_storage.database_url, command_timeout_s=QUERY_TIMEOUT_S)
    async with pool.acquire() as conn:
        await append(
            conn, [EvidenceRow("flow_versions", {"version": FLOW.version, "name": FLOW.name, "definition": {}})]
        )
    calls = [a_call() for _ in range(60)]
    orphan = a_call()[1:]  # a keypress of a call never stored: refused by its foreign key
    try:
        async with appender(pool, acquire_timeout_s=POOL_ACQUIRE_S) as writing:
            together = await asyncio.gather(*(writing.append(rows) for rows in calls[:50]))
            statements = writing.statements
            mixed = await asyncio.gather(
                *(writing.append(rows) for rows in calls[50:55]),
                writing.append(orphan),
                *(writing.append(rows) for rows in calls[55:]),
                return_exceptions=True,
            )
        async with pool.acquire() as conn:
            stored = await conn.fetchval("SELECT count(*) FROM keypresses")
    finally:
        await pool.close()

    assert together == [None] * 50
    assert statements <= 5  # fifty webhooks' evidence in a handful of statements
    assert isinstance(mixed[5], asyncpg.ForeignKeyViolationError)
    assert [r for i, r in enumerate(mixed) if i != 5] == [None] * 10
    assert stored == 60
    report = await verify(own_storage)
    assert report.intact and report.entries == 1 + 120


async def test_without_postgres_every_waiting_webhook_hears_so(own_storage) -> None:
    owner = await connect(own_storage.database_url)
    await apply_migrations(owner)
    await owner.close()
    pool = await create_pool(own_storage.database_url, command_timeout_s=QUERY_TIMEOUT_S)
    async with appender(pool, acquire_timeout_s=POOL_ACQUIRE_S) as writing:
        await pool.close()
        with pytest.raises(asyncpg.InterfaceError):
            await asyncio.wait_for(writing.append(a_call()), 10)
