"""The hash chain: intact after real calls and concurrent writers; every kind of tampering named."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import pytest
from aiohttp.test_utils import unused_port
from click.testing import CliRunner

from flows.loader import builtin_flows
from flows.model import CallState, KeypressFact, KeypressOutcome
from ivr.cli import main
from ivr.time_budget import QUERY_TIMEOUT_S
from storage.evidence import CallRecord, call_row, keypress_row
from storage.ledger import GENESIS, EvidenceRow, append, canonical_json, chained, entry_hash
from storage.migrator import apply_migrations
from storage.postgres import as_service_role, connect, create_pool
from tests.conftest import Storage, running_service
from tests.helpers import make_calls, tamper, verify


async def test_real_calls_leave_an_intact_chain_whose_hashes_anyone_can_recompute(own_storage, http) -> None:
    await make_calls(own_storage, http)
    report = await verify(own_storage)

    assert report.intact and report.entries > 10
    conn = await connect(own_storage.database_url)
    try:
        first = await conn.fetchrow("SELECT * FROM ledger ORDER BY seq LIMIT 1")
        content = await conn.fetchval(f"SELECT to_jsonb(t.*) FROM {first['kind']} t WHERE id = $1", first["ref_id"])
    finally:
        await conn.close()
    assert first["prev_hash"] == GENESIS
    assert first["hash"] == entry_hash(canonical_json(content), GENESIS)


async def test_an_edited_decision_is_named(own_storage, http) -> None:
    await make_calls(own_storage, http)
    conn = await connect(own_storage.database_url)
    target = await conn.fetchval("SELECT min(id) FROM consent_events")
    await conn.close()
    await tamper(own_storage, f"UPDATE consent_events SET action = 'grant' WHERE id = {target}")

    report = await verify(own_storage)
    assert (report.first_break.problem, report.first_break.kind, report.first_break.ref_id) == (
        "edited",
        "consent_events",
        target,
    )


async def test_every_break_is_reported_and_counted_not_only_the_first(own_storage, http) -> None:
    await make_calls(own_storage, http)
    conn = await connect(own_storage.database_url)
    first, last = await conn.fetchrow("SELECT min(id), max(id) FROM consent_events")
    entries = await conn.fetchval("SELECT count(*) FROM ledger")
    await conn.close()
    await tamper(
        own_storage,
        f"UPDATE consent_events SET action = 'grant' WHERE id IN ({first}, {last})",
        "DELETE FROM keypresses WHERE id = (SELECT min(id) FROM keypresses)",
        "DELETE FROM ledger WHERE seq = 3",
    )

    report = await verify(own_storage)
    found = sorted((b.problem, b.kind, b.ref_id) for b in report.breaks if b.problem != "missing" or b.ref_id)
    # Four changes, five breaks: the row ledger entry #3 chained is now a row never chained.
    assert report.break_count == len(report.breaks) == 5
    assert any(b.problem == "inserted" for b in report.breaks)
    assert ("edited", "consent_events", first) in found and ("edited", "consent_events", last) in found
    assert any(b.problem == "missing" and b.kind == "keypresses" for b in report.breaks)
    assert any(b.problem == "missing" and b.seq == 3 and b.ref_id is None for b in report.breaks)
    assert report.entries == entries  # walked to the end, past every break


async def test_a_deleted_keypress_is_named(own_storage, http) -> None:
    await make_calls(own_storage, http)
    await tamper(own_storage, "DELETE FROM keypresses WHERE id = (SELECT max(id) FROM keypresses)")

    report = await verify(own_storage)
    assert (report.first_break.problem, report.first_break.kind) == ("missing", "keypresses")


async def test_a_deleted_ledger_entry_is_named(own_storage, http) -> None:
    await make_calls(own_storage, http)
    await tamper(own_storage, "DELETE FROM ledger WHERE seq = 5")

    report = await verify(own_storage)
    assert (report.first_break.problem, report.first_break.seq) == ("missing", 5)


async def test_swapped_entries_are_named_as_reordered(own_storage, http) -> None:
    await make_calls(own_storage, http)
    await tamper(
        own_storage,
        "UPDATE ledger SET seq = 1000007 WHERE seq = 7",
        "UPDATE ledger SET seq = 7 WHERE seq = 8",
        "UPDATE ledger SET seq = 8 WHERE seq = 1000007",
    )

    report = await verify(own_storage)
    assert (report.first_break.problem, report.first_break.seq) == ("reordered", 7)
    assert report.first_break.detail == "links to entry #8, not #6"


async def test_a_forged_row_that_was_never_chained_is_named(own_storage, http) -> None:
    sids = await make_calls(own_storage, http)
    await tamper(
        own_storage,
        f"""INSERT INTO consent_events (call_sid, seq, subject, purpose, action, channel, raw_digits, caller_number,
                                        dialed_number, identification, flow_name, flow_version, prompt_text, lang,
                                        idempotency_token)
            SELECT call_sid, 99, subject, 'cpni', 'grant', 'keypad', '1', caller_number, dialed_number, 'ani',
                   flow_name, flow_version, prompt_text, lang, 'forged'
            FROM consent_events WHERE call_sid = '{sids[0]}'""",
    )

    report = await verify(own_storage)
    assert (report.first_break.problem, report.first_break.kind) == ("inserted", "consent_events")


async def test_a_rewritten_history_is_caught_by_the_head_an_auditor_kept(own_storage, http) -> None:
    await make_calls(own_storage, http, count=1)
    kept = (await verify(own_storage)).head.hash
    await make_calls(own_storage, http, count=1)
    assert (await verify(own_storage, since_head=kept)).since_head_seq is not None

    # An insider recomputes every hash after editing a row: the chain is consistent again…
    conn = await connect(own_storage.database_url)
    target = await conn.fetchval("SELECT min(id) FROM consent_events")
    await conn.close()
    await tamper(own_storage, f"UPDATE consent_events SET action = 'grant' WHERE id = {target}")
    await rechain(own_storage)
    assert (await verify(own_storage)).intact
    # …but the head the auditor kept is no longer in it.
    report = await verify(own_storage, since_head=kept)
    assert report.first_break.problem == "rewritten"


async def rechain(storage: Storage) -> None:
    owner = await connect(storage.database_url)
    try:
        rows = await owner.fetch("SELECT seq, kind, ref_id FROM ledger ORDER BY seq")
        prev = GENESIS
        await owner.execute("ALTER TABLE ledger DISABLE TRIGGER USER")
        for row in rows:
            content = await owner.fetchval(f"SELECT to_jsonb(t.*) FROM {row['kind']} t WHERE id = $1", row["ref_id"])
            new = entry_hash(canonical_json(content), prev)
            await owner.execute("UPDATE ledger SET prev_hash = $1, hash = $2 WHERE seq = $3", prev, new, row["seq"])
            prev = new
        await owner.execute("ALTER TABLE ledger ENABLE TRIGGER USER")
    finally:
        await owner.close()


async def test_eight_concurrent_writers_keep_one_valid_chain(own_storage, http) -> None:
    await make_calls(own_storage, http, count=1)  # migrated, with a call to hang evidence on
    pool = await create_pool(own_storage.database_url, command_timeout_s=QUERY_TIMEOUT_S, min_size=8, max_size=8)

    async def writer(n: int) -> None:
        for i in range(500):
            async with pool.acquire() as conn, chained(conn) as chain:
                await chain.insert(
                    "pin_checks",
                    "INSERT INTO pin_checks (account_number, call_sid, ok) VALUES ($1, $2, $3)",
                    f"9000{n}",
                    f"CA-writer-{n}-{i}",
                    i % 2 == 0,
                )

    try:
        await asyncio.gather(*(writer(n) for n in range(8)))
    finally:
        await pool.close()

    report = await verify(own_storage)
    assert report.intact, report.first_break
    conn = await connect(own_storage.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM ledger WHERE kind = 'pin_checks'") == 4000
        assert await conn.fetchval("SELECT max(seq) = count(*) FROM ledger")
    finally:
        await conn.close()


def test_ivr_verify_exits_zero_when_intact_and_one_naming_the_break(own_storage) -> None:
    env = {"DATABASE_URL": own_storage.database_url, "IVR_FLOWS_DIR": ""}
    asyncio.run(_seed(own_storage))
    intact = CliRunner().invoke(main, ["verify"], env=env)
    head = CliRunner().invoke(main, ["verify", "--head"], env=env)
    asyncio.run(tamper(own_storage, "DELETE FROM ledger WHERE seq = 1"))
    broken = CliRunner().invoke(main, ["verify"], env=env)

    assert intact.exit_code == 0 and "ledger intact:" in intact.output
    assert head.exit_code == 0 and head.output.startswith("head ")
    assert broken.exit_code == 1
    assert "missing: entry #1" in broken.output


async def _seed(storage: Storage) -> None:
    async with running_service(storage, unused_port()):
        pass  # migrates and registers the flow versions: chained rows to verify


async def test_the_service_role_cannot_write_the_ledger_directly(own_storage, http) -> None:
    await make_calls(own_storage, http, count=1)
    service_dsn = as_service_role(own_storage.database_url)
    pool = await create_pool(service_dsn, command_timeout_s=QUERY_TIMEOUT_S, min_size=1, max_size=1)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await pool.execute(
                "INSERT INTO ledger (seq, kind, ref_id, prev_hash, hash) VALUES (999, 'x', 1, $1, $1)", GENESIS
            )
    finally:
        await pool.close()


AWKWARD = 'He said "yes" \\ then\n\ttabbed \x01\x1f\x7f é 中文 😀 \u2028 </Say> & done'


async def test_rows_chained_in_the_database_hash_exactly_as_verify_recomputes_them(own_storage) -> None:
    flow = builtin_flows()["consent-line"]
    state = CallState("CA" + "7" * 32, "+14155550100", "+18005550199", flow.name, flow.version, "en", "main_menu")
    definition = {"b": [1, {"z": AWKWARD, "a": None}], "a": True, "é": 1.5, "": [], "A": {}}
    rows = [
        EvidenceRow("flow_versions", {"version": flow.version, "name": flow.name, "definition": definition}),
        call_row(CallRecord(state.call_sid, "AC1", state.caller, state.dialed, "inbound"), flow),
        keypress_row(
            state,
            KeypressFact(0, "main_menu", "1", "", KeypressOutcome.VALID, AWKWARD, "en"),
            "token-1",
            datetime.now(UTC),
        ),
    ]
    owner = await connect(own_storage.database_url)
    await apply_migrations(owner)
    await owner.close()
    pool = await create_pool(as_service_role(own_storage.database_url), command_timeout_s=QUERY_TIMEOUT_S)
    try:
        async with pool.acquire() as conn:
            head = await append(conn, rows)
            again = await append(conn, rows)  # a retried webhook: nothing new, nothing chained
            for table in ("flow_versions", "calls", "keypresses"):
                content, in_sql = await conn.fetchrow(
                    f"SELECT to_jsonb(t.*), canonical_json(to_jsonb(t.*)) FROM {table} t ORDER BY id DESC LIMIT 1"
                )
                assert in_sql == canonical_json(content)
    finally:
        await pool.close()

    report = await verify(own_storage)
    assert report.intact and report.entries == 3
    assert head == report.head.hash and again is None
