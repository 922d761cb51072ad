"""Short fault runs for every change (the long ones: bench/faults.py, docs/reliability.md)."""

from __future__ import annotations

import asyncio

from storage.postgres import connect
from storage.verify import verify_ledger
from tests.campaign import campaign, decisions_by_call
from tests.conftest import AUTH_TOKEN


async def reconcile(storage, tally) -> dict:
    conn = await connect(storage.database_url)
    try:
        everyone = tally.told_recorded | tally.told_not_recorded | tally.untold
        decided = await decisions_by_call(conn, everyone)
        intact = (await verify_ledger(conn)).intact
    finally:
        await conn.close()
    return tally.invariants(decided, intact)


async def test_duplicated_and_out_of_order_webhooks_store_each_decision_once(service, storage) -> None:
    tally = await campaign(service.base_url, AUTH_TOKEN, calls=40, concurrency=20)
    figures = await reconcile(storage, tally)

    assert figures["calls"] == 40 and figures["webhook deliveries"] > 200
    assert figures["told recorded"] == 40 == figures["decisions in the ledger"]
    assert figures["confirmed but missing"] == 0 and figures["duplicate decisions"] == 0
    assert figures["HTTP 5xx to Twilio"] == 0 and figures["ivr verify intact"]


async def test_connections_killed_mid_run_never_yield_a_false_recorded(service, storage) -> None:
    async def kill_the_service_connections() -> None:
        conn = await connect(storage.database_url)
        try:
            for _ in range(5):
                await conn.execute(
                    """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                       WHERE datname = current_database() AND pid <> pg_backend_pid()"""
                )
                await asyncio.sleep(0.05)
        finally:
            await conn.close()

    tally = await campaign(
        service.base_url, AUTH_TOKEN, calls=40, concurrency=20, fault=kill_the_service_connections, fault_after=10
    )
    figures = await reconcile(storage, tally)

    assert figures["confirmed but missing"] == 0
    assert figures["duplicate decisions"] == 0
    assert figures["decided although told nothing was recorded"] == 0
    assert figures["HTTP 5xx to Twilio"] == 0
    assert (
        figures["told recorded"]
        + figures["told nothing was recorded"]
        + figures["no answer at all (connection failed)"]
        == 40
    )
    assert figures["ivr verify intact"]
