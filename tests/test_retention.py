"""Retention runs remove only what is past its period and not on hold, and the chain still verifies."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta

from aiohttp.test_utils import unused_port
from click.testing import CliRunner

from ivr.cli import main
from storage.customers import Customer, upsert_customer
from storage.ledger import chained
from storage.postgres import connect
from storage.retention import hold, plan_removal, remove
from tests.conftest import AUTH_TOKEN, running_service
from tests.fake_twilio import FakeTwilio
from tests.helpers import make_calls, verify

FIVE_YEARS = 1826


async def two_decisions(storage, http) -> tuple[list[str], str]:
    """The same number stops marketing calls, then (on a later call) opts in again."""
    sids = await make_calls(storage, http, count=1)  # keys 2, 2, 1: revoke telemarketing
    conn = await connect(storage.database_url)
    try:
        caller = await conn.fetchval("SELECT caller_number FROM calls WHERE call_sid = $1", sids[0])
    finally:
        await conn.close()
    async with running_service(storage, unused_port()) as running:
        call = FakeTwilio(http, running.base_url, AUTH_TOKEN).call(caller=caller)
        await call.dial()
        await call.keys("2", "1", "1")  # opts in again: the revocation is no longer in effect
        sids.append(call.call_sid)
    return sids, caller


async def run_retention(storage, as_of, *, dry_run: bool = False, days: int = FIVE_YEARS):
    owner = await connect(storage.database_url)
    try:
        async with chained(owner) as chain:
            plan = await plan_removal(owner, {}, days, as_of)
            if not dry_run and plan.rows:
                await remove(chain, plan, actor="test", reason="test run", periods={}, default_days=days, as_of=as_of)
            return plan
    finally:
        await owner.close()


async def decided_at(storage, call_sid: str):
    conn = await connect(storage.database_url)
    try:
        return await conn.fetchval("SELECT recorded_at FROM consent_events WHERE call_sid = $1", call_sid)
    finally:
        await conn.close()


async def count(storage, table: str, call_sid: str) -> int:
    conn = await connect(storage.database_url)
    try:
        return await conn.fetchval(f"SELECT count(*) FROM {table} WHERE call_sid = $1", call_sid)
    finally:
        await conn.close()


async def test_a_superseded_decision_goes_after_its_period_and_the_chain_still_verifies(own_storage, http) -> None:
    (old, current), _ = await two_decisions(own_storage, http)
    superseded_at = await decided_at(own_storage, current)

    too_early = await run_retention(own_storage, superseded_at + timedelta(days=FIVE_YEARS - 1), dry_run=True)
    assert too_early.call_sids == []
    due = await run_retention(own_storage, superseded_at + timedelta(days=FIVE_YEARS + 1), dry_run=True)
    assert due.call_sids == [old]
    # A real run is as of its own time (ivr verify refuses a tombstone dated ahead): so
    # that its period has passed by now, the period is none.
    plan = await run_retention(own_storage, datetime.now(UTC), days=0)

    assert plan.call_sids == [old]  # the decision still in effect stays, whatever its age
    for table in ("calls", "keypresses", "consent_events", "call_endings"):
        assert await count(own_storage, table, old) == 0
    assert await count(own_storage, "consent_events", current) == 1
    report = await verify(own_storage)
    assert report.intact, report.first_break
    assert report.removed == len(plan.rows) > 0


async def test_a_hold_keeps_everything_until_it_is_released(own_storage, http) -> None:
    (old, current), caller = await two_decisions(own_storage, http)
    later = await decided_at(own_storage, current) + timedelta(days=FIVE_YEARS + 1)
    conn = await connect(own_storage.database_url)
    try:
        async with chained(conn) as chain:
            await hold(chain, caller, "place", "litigation 2031-17", "counsel")
    finally:
        await conn.close()

    assert (await run_retention(own_storage, later)).call_sids == []
    conn = await connect(own_storage.database_url)
    try:
        async with chained(conn) as chain:
            await hold(chain, caller, "release", "case closed", "counsel")
    finally:
        await conn.close()
    assert (await run_retention(own_storage, later)).call_sids == [old]


async def test_a_dry_run_changes_nothing(own_storage, http) -> None:
    (old, current), _ = await two_decisions(own_storage, http)
    plan = await run_retention(
        own_storage, await decided_at(own_storage, current) + timedelta(days=FIVE_YEARS + 1), dry_run=True
    )

    assert plan.call_sids == [old]
    assert await count(own_storage, "consent_events", old) == 1


async def test_a_doctored_tombstone_is_caught(own_storage, http) -> None:
    (_, current), _ = await two_decisions(own_storage, http)
    await run_retention(own_storage, await decided_at(own_storage, current) + timedelta(days=FIVE_YEARS + 1))
    owner = await connect(own_storage.database_url)
    try:
        await owner.execute("ALTER TABLE removed_rows DISABLE TRIGGER USER")
        await owner.execute("DELETE FROM removed_rows WHERE kind = 'keypresses'")
        await owner.execute("ALTER TABLE removed_rows ENABLE TRIGGER USER")
    finally:
        await owner.close()

    report = await verify(own_storage)
    assert report.first_break.problem == "missing"  # the keypress entries lost their excuse


async def test_a_tombstone_claiming_more_than_it_removed_is_caught(own_storage, http) -> None:
    (_, current), _ = await two_decisions(own_storage, http)
    await run_retention(own_storage, await decided_at(own_storage, current) + timedelta(days=FIVE_YEARS + 1))
    owner = await connect(own_storage.database_url)
    try:
        run_id = await owner.fetchval("SELECT max(id) FROM retention_runs")
        await owner.execute(
            """INSERT INTO removed_rows (kind, ref_id, run_id, ledger_seq, ledger_hash)
               SELECT 'consent_events', e.id, $1, l.seq, l.hash FROM consent_events e
               JOIN ledger l ON l.kind = 'consent_events' AND l.ref_id = e.id LIMIT 1""",
            run_id,
        )
    finally:
        await owner.close()

    report = await verify(own_storage)
    assert (report.first_break.problem, report.first_break.kind) == ("edited", "retention_runs")


def test_the_cli_places_holds_and_forecasts_a_run(own_storage) -> None:
    env = {"DATABASE_URL": own_storage.database_url}
    runner = CliRunner()
    placed = runner.invoke(main, ["hold", "add", "--subject", "+14155550100", "--reason", "subpoena"], env=env)
    listed = runner.invoke(main, ["hold", "list"], env=env)
    forecast = runner.invoke(main, ["retention", "run", "--dry-run", "--as-of", "2040-01-01"], env=env)

    assert placed.exit_code == 0 and "hold placed on +14155550100" in placed.output
    assert "+14155550100" in listed.output and "subpoena" in listed.output
    assert forecast.exit_code == 0 and forecast.output.startswith("would remove 0 call(s)")
    assert asyncio.run(_intact(own_storage))


async def _intact(storage) -> bool:
    return (await verify(storage)).intact


async def test_a_hold_on_an_account_keeps_the_decisions_made_from_its_numbers(own_storage, http) -> None:
    (old, current), caller = await two_decisions(own_storage, http)
    later = await decided_at(own_storage, current) + timedelta(days=FIVE_YEARS + 1)
    account = "7000" + str(secrets.randbelow(10**8))
    conn = await connect(own_storage.database_url)
    try:
        await upsert_customer(conn, Customer(account, "Held Customer", None, (caller,)))
        async with chained(conn) as chain:
            await hold(chain, account, "place", "litigation 2031-18", "counsel")  # the account, not the number
    finally:
        await conn.close()

    assert (await run_retention(own_storage, later, dry_run=True)).call_sids == []
    conn = await connect(own_storage.database_url)
    try:
        async with chained(conn) as chain:
            await hold(chain, account, "release", "case closed", "counsel")
    finally:
        await conn.close()
    assert (await run_retention(own_storage, later, dry_run=True)).call_sids == [old]


def test_a_real_run_refuses_an_as_of(own_storage) -> None:
    env = {"DATABASE_URL": own_storage.database_url}
    refused = CliRunner().invoke(main, ["retention", "run", "--as-of", "2040-01-01"], env=env)
    now = CliRunner().invoke(main, ["retention", "run"], env=env)

    assert refused.exit_code == 2 and "use it with --dry-run" in refused.output
    assert now.exit_code == 0 and f"(as of {datetime.now(UTC).date().isoformat()}" in now.output
    assert asyncio.run(_count_runs(own_storage)) == 0  # nothing was past its period today


async def test_the_tombstone_records_what_the_run_applied(own_storage, http) -> None:
    (_, current), _ = await two_decisions(own_storage, http)
    as_of = await decided_at(own_storage, current) + timedelta(days=FIVE_YEARS + 1)
    await run_retention(own_storage, as_of)

    conn = await connect(own_storage.database_url)
    try:
        periods = await conn.fetchval("SELECT periods FROM retention_runs ORDER BY id DESC LIMIT 1")
    finally:
        await conn.close()
    assert periods == {"as_of": as_of.isoformat(), "default_days": FIVE_YEARS, "purposes": {}}


async def _count_runs(storage) -> int:
    conn = await connect(storage.database_url)
    try:
        return await conn.fetchval("SELECT count(*) FROM retention_runs")
    finally:
        await conn.close()
