"""ivr verify rechecks every retention run from its chained justification: a removal that
was not allowed is reported, however it was made (issue 15, attack 2)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import unused_port
from click.testing import CliRunner

from ivr.cli import main
from storage.customers import Customer, upsert_customer
from storage.ledger import chained
from storage.migrator import apply_migrations
from storage.postgres import as_service_role, connect
from storage.retention import CALL_TABLES, Removal, hold, justification, remove, salted_digest
from storage.verify import verify_ledger
from tests.conftest import running_service
from tests.helpers import make_calls
from tests.test_retention import FIVE_YEARS, decided_at, run_retention, two_decisions


def cli_verify(storage, *args: str):
    env = {"DATABASE_URL": storage.database_url, "IVR_DATA_DIR": "var-tests"}
    return CliRunner().invoke(main, ["verify", *args], env=env)


async def verified(storage, *args: str):
    return await asyncio.to_thread(cli_verify, storage, *args)


def problems(result) -> list[str]:
    """The problem lines ``ivr verify`` listed."""
    return [line.strip() for line in result.output.splitlines() if line.startswith("  ")]


async def removal_by_hand(conn, call_sids: list[str]) -> Removal:
    """What an owner could hand ``remove()`` without asking ``plan_removal``: these calls, whole."""
    rows = []
    for table in CALL_TABLES:
        found = await conn.fetch(
            f"SELECT t.id, l.seq, l.hash FROM {table} t JOIN ledger l ON l.kind = $1 AND l.ref_id = t.id "
            "WHERE t.call_sid = ANY($2::text[])",
            table,
            call_sids,
        )
        rows.extend((table, r["id"], r["seq"], r["hash"]) for r in found)
    recordings = await conn.fetch("SELECT recording_sid FROM recordings WHERE call_sid = ANY($1::text[])", call_sids)
    return Removal(call_sids, rows, [r["recording_sid"] for r in recordings])


async def remove_by_hand(storage, call_sids: list[str], *, default_days: int, as_of: datetime | None = None) -> None:
    owner = await connect(storage.database_url)
    try:
        async with chained(owner) as chain:
            removal = await removal_by_hand(owner, call_sids)
            await remove(
                chain,
                removal,
                actor="mallory",
                reason="tidying up",
                periods={},
                default_days=default_days,
                as_of=as_of or datetime.now(UTC),
            )
    finally:
        await owner.close()


async def latest_justification(storage) -> dict:
    conn = await connect(storage.database_url)
    try:
        return await conn.fetchval("SELECT justification FROM retention_runs ORDER BY id DESC LIMIT 1")
    finally:
        await conn.close()


async def test_an_honest_run_rechecks_clean_and_keeps_no_number_in_clear(own_storage, http) -> None:
    (old, current), caller = await two_decisions(own_storage, http)
    plan = await run_retention(own_storage, datetime.now(UTC), days=0)  # periods of none: all due now
    assert plan.call_sids == [old]

    why = await latest_justification(own_storage)
    [call] = why["calls"]
    [decision] = call["decisions"]
    conn = await connect(own_storage.database_url)
    try:
        superseder = await conn.fetchrow(
            "SELECT l.seq, e.recorded_at FROM consent_events e JOIN ledger l "
            "ON l.kind = 'consent_events' AND l.ref_id = e.id WHERE e.call_sid = $1",
            current,
        )
        seen: list[int] = []
        report = await verify_ledger(conn, progress=seen.append)
    finally:
        await conn.close()
    assert call["call_sid"] == old and call["caller"] == salted_digest(why["salt"], caller)
    assert (decision["superseded_by"], decision["superseded_at"]) == (
        superseder["seq"],
        superseder["recorded_at"].isoformat(),
    )
    assert caller not in json.dumps(why)  # pseudonymised: only salted digests
    assert call["caller"] == hashlib.sha256((why["salt"] + caller).encode()).hexdigest()
    assert seen == [report.entries]  # a short ledger: only the count at the end
    service = await connect(as_service_role(own_storage.database_url))
    try:
        as_service = await verify_ledger(service)  # ivr verify as the service login: it reads the sequences
    finally:
        await service.close()
    assert as_service.intact and as_service.retention_checked == 1, as_service

    result = await verified(own_storage)
    assert result.exit_code == 0, result.output
    assert "retention: 1 run(s) rechecked, 0 removal(s) not allowed" in result.output
    assert f"checked {report.entries:,} entries…" in result.stderr
    as_json = json.loads((await verified(own_storage, "--json")).stdout)
    assert (as_json["intact"], as_json["retention_checked"], as_json["retention_breaks"]) == (True, 1, [])


async def test_attack_2_a_hand_made_removal_of_a_decision_made_a_second_ago_is_not_allowed(own_storage, http) -> None:
    [sid] = await make_calls(own_storage, http, count=1)
    await remove_by_hand(own_storage, [sid], default_days=FIVE_YEARS)

    why = await latest_justification(own_storage)
    assert why["calls"][0]["decisions"][0]["superseded_by"] is None  # remove() wrote the truth

    result = await verified(own_storage)
    assert result.exit_code == 1
    listed = problems(result)
    assert all(line.startswith("not allowed: retention_runs id 1: ") for line in listed), listed
    assert any(f"call {sid} started" in line and f"within the default {FIVE_YEARS} days" in line for line in listed)
    assert any("was still in effect: nothing superseded it" in line for line in listed)
    assert "retention: 1 run(s) rechecked, 2 removal(s) not allowed" in result.output
    as_json = json.loads((await verified(own_storage, "--json")).stdout)
    assert as_json["intact"] is False and as_json["breaks"] == []  # the chain itself is whole
    assert [b["problem"] for b in as_json["retention_breaks"]] == ["not allowed", "not allowed"]


async def test_a_justification_forged_by_hand_is_caught_by_a_checkpoint(own_storage, http) -> None:
    async with running_service(own_storage, unused_port()):
        pass  # migrates, chains the flow versions and signs a checkpoint of them at shutdown
    (old, _), _ = await two_decisions(own_storage, http)
    owner = await connect(own_storage.database_url)
    try:
        async with chained(owner) as chain:  # the owner, as remove() does, switching nothing off
            await owner.execute("SET LOCAL ivr.retention_run = 'on'")
            removal = await removal_by_hand(owner, [old])
            forged = await justification(owner, [old])
            long_ago = (datetime.now(UTC) - timedelta(days=FIVE_YEARS + 365)).isoformat()
            forged["calls"][0]["started_at"] = long_ago
            forged["calls"][0]["decisions"][0]["recorded_at"] = long_ago
            purpose = forged["calls"][0]["decisions"][0]["purpose"]
            periods = {"as_of": datetime.now(UTC).isoformat(), "default_days": FIVE_YEARS, "purposes": {purpose: 0}}
            run = await chain.insert(
                "retention_runs",
                "INSERT INTO retention_runs (actor, reason, periods, rows_removed, removed_digest, justification) "
                "VALUES ('mallory', 'old news', $1, $2, $3, $4)",
                periods,
                len(removal.rows),
                removal.digest,
                forged,
            )
            await owner.executemany(
                "INSERT INTO removed_rows (kind, ref_id, run_id, ledger_seq, ledger_hash) VALUES ($1, $2, $3, $4, $5)",
                [(kind, ref_id, run["id"], seq, digest) for kind, ref_id, seq, digest in removal.rows],
            )
            for table in CALL_TABLES:
                await owner.execute(f"DELETE FROM {table} WHERE call_sid = $1", old)
    finally:
        await owner.close()

    result = await verified(own_storage)
    assert result.exit_code == 1
    listed = problems(result)
    assert len(listed) == 2, listed  # the call's start and the decision's time; nothing else gives it away
    assert all("did not exist yet" in line and "checkpoint" in line for line in listed), listed
    assert any(f"call {old} claims to have started {long_ago}" in line for line in listed)


async def test_a_run_dated_ahead_is_caught(own_storage, http) -> None:
    (_, current), _ = await two_decisions(own_storage, http)
    ahead = await decided_at(own_storage, current) + timedelta(days=FIVE_YEARS + 1)
    plan = await run_retention(own_storage, ahead)  # remove() called directly: the CLI refuses an as-of
    assert plan.rows

    result = await verified(own_storage)
    assert result.exit_code == 1
    [line] = problems(result)
    assert line.startswith("not allowed: retention_runs id 1: it ran at ")
    assert "a real run is as of its own time" in line


@pytest.mark.parametrize("held", ["number", "account"])
async def test_a_held_subjects_call_removed_by_hand_is_caught(own_storage, http, held: str) -> None:
    (old, _), caller = await two_decisions(own_storage, http)
    account = "7100" + str(secrets.randbelow(10**8))
    conn = await connect(own_storage.database_url)
    try:
        await upsert_customer(conn, Customer(account, "Held Customer", None, (caller,)))
        async with chained(conn) as chain:
            await hold(chain, caller if held == "number" else account, "place", "litigation 2031-19", "counsel")
    finally:
        await conn.close()
    await remove_by_hand(own_storage, [old], default_days=0)  # past every period: only the hold stands

    result = await verified(own_storage)
    assert result.exit_code == 1
    listed = problems(result)
    shown = caller if held == "number" else f"{caller} (a number of account {account})"
    assert f"not allowed: retention_runs id 1: call {old}: its caller, {shown}, was on hold when it ran" in listed
    assert all(line.endswith(f", {shown}, was on hold when it ran") for line in listed), listed


async def test_a_reset_identity_sequence_is_caught(own_storage, http) -> None:
    await make_calls(own_storage, http, count=1)
    owner = await connect(own_storage.database_url)
    try:
        sequence = await owner.fetchval("SELECT pg_get_serial_sequence('consent_events', 'id')")
        chained_max = await owner.fetchval("SELECT max(ref_id) FROM ledger WHERE kind = 'consent_events'")
        await owner.execute(f"ALTER SEQUENCE {sequence} RESTART")
    finally:
        await owner.close()

    result = await verified(own_storage)
    assert result.exit_code == 1
    assert problems(result) == [
        f"rewritten: consent_events: its identity sequence has handed out nothing since it was restarted, "
        f"behind id {chained_max} in the ledger: it was set back"
    ]


async def test_a_run_from_before_justifications_is_named_not_broken(own_storage) -> None:
    conn = await connect(own_storage.database_url)
    try:
        await apply_migrations(conn, through=16)
        async with chained(conn) as chain:  # a tombstone as runs wrote them then (nothing removed)
            await chain.insert(
                "retention_runs",
                "INSERT INTO retention_runs (actor, reason, periods, rows_removed, removed_digest) "
                "VALUES ('ops', 'before 0017', $1, 0, $2)",
                {"as_of": datetime.now(UTC).isoformat(), "default_days": FIVE_YEARS, "purposes": {}},
                hashlib.sha256(b"").hexdigest(),
            )
        await apply_migrations(conn)  # the column arrives after the row was chained without it
    finally:
        await conn.close()

    result = await verified(own_storage)
    assert result.exit_code == 0, result.output
    assert "run 1 predates justifications: its eligibility cannot be rechecked" in result.output
    assert "retention: 0 run(s) rechecked, 0 removal(s) not allowed" in result.output


async def test_a_long_check_says_how_far_it_has_got(own_storage, http, monkeypatch) -> None:
    await make_calls(own_storage, http, count=1)
    monkeypatch.setattr("storage.verify.PROGRESS_EVERY", 4)  # as every 100,000 entries, on a short ledger
    conn = await connect(own_storage.database_url)
    try:
        seen: list[int] = []
        report = await verify_ledger(conn, progress=seen.append)
    finally:
        await conn.close()

    assert report.entries > 8
    assert seen == [*range(4, report.entries + 1, 4), *([report.entries] if report.entries % 4 else [])]
