"""The ledger at scale: `ivr verify` over 1M entries, and one person's consents among 5M decisions.

    python bench/ledger_scale.py [--dsn postgresql://postgres@127.0.0.1:5432/postgres]
                                 [--verify-events 1000000] [--lookup-events 5000000] [--people 500000]
                                 [--samples 500] [--quick] [--keep]

Targets: `ivr verify` over 1,000,000 ledger entries in under 60 s; the staff API's lookup of
one person's consents (GET /api/subjects/{phone}/consents) with p95 <= 20 ms among 5,000,000
consent events.

Drops and recreates the database ``ivr_scale_bench`` on the server, migrates it as `ivr migrate`
does and stores the deployed flow versions as the service does. It then COPYs a year of calls
(keypresses, CPNI notices, decisions, call endings) from --people callers, builds a valid hash
chain over them exactly as storage/ledger.py's Chain would have, and times `ivr verify` as a
subprocess. Next it tops consent_events up to --lookup-events (those rows are not chained: the
lookup does not read the ledger), and times the API's lookup for --samples random people with a
warm cache, printing EXPLAIN (ANALYZE, BUFFERS) of the queries it runs. The database is dropped
at the end unless --keep.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import heapq
import os
import random
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg  # noqa: E402

from ivr.flow_catalog import deployed_flows, purpose_rules  # noqa: E402
from ivr.time_budget import QUERY_TIMEOUT_S  # noqa: E402
from storage.consent_search import accounts_for_phone  # noqa: E402
from storage.consent_state import consent_state  # noqa: E402
from storage.evidence import register_flow_version  # noqa: E402
from storage.ledger import canonical_json, chained, entry_hash  # noqa: E402
from storage.migrator import apply_migrations  # noqa: E402
from storage.postgres import connect, create_pool  # noqa: E402
from storage.verify import ledger_head  # noqa: E402

BENCH_DB = "ivr_scale_bench"
ROOT = Path(__file__).resolve().parents[1]
YEAR_START = datetime(2025, 1, 6, tzinfo=UTC)
YEAR = timedelta(days=365)
CALLS_PER_BATCH = 20_000
LEDGER_BATCH = 50_000
VERIFY_TIMEOUT_S = 1800

COLUMNS = {
    "calls": (
        "call_sid",
        "account_sid",
        "caller_number",
        "dialed_number",
        "direction",
        "flow_name",
        "flow_version",
        "started_at",
    ),
    "keypresses": (
        "call_sid",
        "seq",
        "step",
        "digits",
        "finished_on_key",
        "outcome",
        "prompt_text",
        "lang",
        "flow_version",
        "idempotency_token",
        "received_at",
        "agent",
    ),
    "notices": (
        "call_sid",
        "seq",
        "step",
        "notice",
        "notice_text",
        "text_sha256",
        "lang",
        "flow_version",
        "caller_number",
        "given_at",
    ),
    "consent_events": (
        "recorded_at",
        "call_sid",
        "seq",
        "subject",
        "purpose",
        "action",
        "channel",
        "raw_digits",
        "caller_number",
        "dialed_number",
        "identification",
        "agent",
        "recording_sid",
        "flow_name",
        "flow_version",
        "prompt_text",
        "lang",
        "idempotency_token",
        "honor_by",
        "subject_kind",
        "scope",
    ),
    "call_endings": ("call_sid", "status", "duration_s", "twilio_timestamp", "abandoned_at_step", "received_at"),
}
# The column that dates each row: the chain is built in (roughly) the order rows were written.
TIME_COLUMN = {
    "calls": "started_at",
    "keypresses": "received_at",
    "notices": "given_at",
    "consent_events": "recorded_at",
    "call_endings": "received_at",
}
PURPOSES = ("telemarketing", "cpni", "email", "direct_mail", "call_recording", "credit_decisions", "testimonial")
PURPOSE_WEIGHTS = (30, 20, 15, 10, 12, 8, 5)
MENU_KEY = {
    p: str(i + 1)
    for i, p in enumerate(
        ("cpni", "telemarketing", "email", "direct_mail", "call_recording", "testimonial", "credit_decisions")
    )
}
DIALED = ("+18005550100", "+18005550101", "+18885550142")
NOTICE_TEXT = {
    "en": "You have a right, and we have a duty, under federal law to protect the confidentiality of your "
    "account information. Unless you restrict it within 30 days, we may use it to offer you other services.",
    "es": "Usted tiene el derecho, y nosotros el deber, según la ley federal, de proteger la confidencialidad de "
    "la información de su cuenta. Salvo que la restrinja en 30 días, podremos usarla para ofrecerle servicios.",
}
NOTICE_SHA = {lang: hashlib.sha256(text.encode()).hexdigest() for lang, text in NOTICE_TEXT.items()}


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


def say(text: str) -> None:
    print(text, flush=True)


# --- synthetic evidence ----------------------------------------------------------------------


@dataclass
class Batch:
    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=lambda: {t: [] for t in COLUMNS})


@dataclass(frozen=True)
class Person:
    phone: str
    account: str | None


class Population:
    """Callers: a few frequent ones, most calling now and then; some are identified customers."""

    def __init__(self, rng: random.Random, size: int) -> None:
        self.rng = rng
        numbers = rng.sample(range(2_012_000_000, 9_899_999_999), size)
        self.people = [
            Person(f"+1{number}", f"{10_000_000 + i}" if rng.random() < 0.15 else None)
            for i, number in enumerate(numbers)
        ]
        self.frequent = self.people[: max(1, size // 20)]

    def pick(self) -> Person:
        pool = self.frequent if self.rng.random() < 0.2 else self.people
        return pool[int(self.rng.random() * len(pool))]


class Calls:
    """A year of calls to the consent line (and the two short flows), as the webhooks store them."""

    def __init__(self, rng: random.Random, people: Population, versions: dict[str, str], total_calls: int) -> None:
        self.rng, self.people, self.versions = rng, people, versions
        self.spacing = YEAR / max(1, total_calls)
        self.made = 0
        self.account_sid = "AC" + "5a" * 16

    def batch(self, count: int, *, keypresses: bool) -> Batch:
        batch = Batch()
        for _ in range(count):
            self._call(batch, keypresses)
        return batch

    def _call(self, batch: Batch, keypresses: bool) -> None:
        n, rng = self.made, self.rng
        self.made += 1
        at = YEAR_START + self.spacing * n
        person = self.people.pick()
        sid = f"CA{n:016x}{rng.getrandbits(64):016x}"
        roll = rng.random()
        flow = "consent-line" if roll < 0.85 else ("cpni-one-time" if roll < 0.92 else "telemarketing-opt-out")
        call = _CallContext(
            sid, person, DIALED[n % 3], "es" if rng.random() < 0.15 else "en", flow, self.versions[flow], at
        )
        batch.rows["calls"].append(
            (sid, self.account_sid, person.phone, call.dialed, "inbound", flow, call.version, at)
        )
        decisions = rng.choice((1, 1, 2, 2, 3, 4)) if flow == "consent-line" else 1
        for _ in range(decisions):
            self._decision(batch, call, keypresses)
        self._ending(batch, call)

    def _decision(self, batch: Batch, call: _CallContext, keypresses: bool) -> None:
        purpose, action, scope = self._what(call.flow)
        menu_seq, choice_seq = call.next_seq(), call.next_seq()
        key = "1" if action == "grant" else "2"
        if keypresses:
            batch.rows["keypresses"].append(call.keypress(menu_seq, "menu", MENU_KEY[purpose]))
            batch.rows["keypresses"].append(call.keypress(choice_seq, f"{purpose}_choice", key))
        if purpose == "cpni" and call.flow == "consent-line":
            lang = call.lang
            batch.rows["notices"].append(
                (
                    call.sid,
                    menu_seq,
                    "cpni_notice",
                    "cpni",
                    NOTICE_TEXT[lang],
                    NOTICE_SHA[lang],
                    lang,
                    call.version,
                    call.person.phone,
                    call.moment(menu_seq),
                )
            )
        batch.rows["consent_events"].append(self._event(call, choice_seq, purpose, action, scope, key))

    def _what(self, flow: str) -> tuple[str, str, str]:
        if flow == "telemarketing-opt-out":
            return "telemarketing", "revoke", "standing"
        if flow == "cpni-one-time":
            return "cpni", "grant" if self.rng.random() < 0.8 else "revoke", "call"
        purpose = self.rng.choices(PURPOSES, PURPOSE_WEIGHTS)[0]
        return purpose, "grant" if self.rng.random() < 0.6 else "revoke", "standing"

    def _event(self, call: _CallContext, seq: int, purpose: str, action: str, scope: str, key: str) -> tuple:
        rng, person = self.rng, call.person
        at = call.moment(seq) + timedelta(milliseconds=300)
        customer = person.account is not None and rng.random() < 0.6
        subject, kind, identification = (
            (person.account, "customer", "ani_pin") if customer else (person.phone, "phone", "ani")
        )
        channel, raw, agent, recording = _channel(rng, purpose, key)
        telemarketing_revoked = action == "revoke" and purpose == "telemarketing"
        honor_by: date | None = (at + timedelta(days=14)).date() if telemarketing_revoked else None
        return (
            at,
            call.sid,
            seq,
            subject,
            purpose,
            action,
            channel,
            raw,
            person.phone,
            call.dialed,
            identification,
            agent,
            recording,
            call.flow,
            call.version,
            f"{purpose}: press 1 to grant, 2 to refuse ({call.lang})",
            call.lang,
            f"{call.sid}:{seq}",
            honor_by,
            kind,
            scope,
        )

    def _ending(self, batch: Batch, call: _CallContext) -> None:
        end = call.moment(call.seq + 1)
        abandoned = "menu" if self.rng.random() < 0.05 else None
        duration = int((end - call.at).total_seconds())
        batch.rows["call_endings"].append(
            (call.sid, "completed", duration, end.strftime("%a, %d %b %Y %H:%M:%S +0000"), abandoned, end)
        )


def _channel(rng: random.Random, purpose: str, key: str) -> tuple[str, str, str | None, str | None]:
    roll = rng.random()
    if roll < 0.72:
        return "keypad", key, None, None
    if roll < 0.87:
        return "dialing_string", f"*{MENU_KEY[purpose]}{key}#", None, None
    if roll < 0.96:
        return "agent_assisted", key, f"agent{rng.randint(1, 40):02d}", None
    return "verbal", key, None, f"RE{rng.getrandbits(128):032x}"


@dataclass
class _CallContext:
    sid: str
    person: Person
    dialed: str
    lang: str
    flow: str
    version: str
    at: datetime
    seq: int = 0

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def moment(self, seq: int) -> datetime:
        return self.at + timedelta(seconds=9 * seq)

    def keypress(self, seq: int, step: str, digits: str) -> tuple:
        return (
            self.sid,
            seq,
            step,
            digits,
            "",
            "valid",
            f"{step} prompt ({self.lang})",
            self.lang,
            self.version,
            f"{self.sid}:{seq}",
            self.moment(seq),
            None,
        )


async def copy_batch(conn: asyncpg.Connection, batch: Batch) -> dict[str, int]:
    counts = {}
    for table, columns in COLUMNS.items():  # calls first: the others reference them
        rows = batch.rows[table]
        if rows:
            await conn.copy_records_to_table(table, records=rows, columns=columns)
        counts[table] = len(rows)
    return counts


async def load(conn: asyncpg.Connection, calls: Calls, *, keypresses: bool, calls_left: Callable[[dict], int]) -> dict:
    """COPY batches of calls while ``calls_left(totals)`` (an estimate from the rows so far) is positive."""
    totals = dict.fromkeys(COLUMNS, 0)
    while (left := calls_left(totals)) > 0:
        counts = await copy_batch(conn, calls.batch(min(left, CALLS_PER_BATCH), keypresses=keypresses))
        for table, count in counts.items():
            totals[table] += count
    return totals


# --- the chain ---------------------------------------------------------------------------------


class _Stream:
    """One evidence table in id order, as the Chain saw each row (``to_jsonb`` in a UTC session)."""

    def __init__(self, conn: asyncpg.Connection, table: str, rank: int) -> None:
        query = f"SELECT id, {TIME_COLUMN[table]} AS at, to_jsonb(t.*) AS content FROM {table} t ORDER BY id"
        self.cursor_factory = conn.cursor(query)
        self.table, self.rank = table, rank
        self.cursor: Any = None
        self.buffer: list[asyncpg.Record] = []

    async def next(self) -> asyncpg.Record | None:
        if not self.buffer:
            if self.cursor is None:
                self.cursor = await self.cursor_factory
            self.buffer = list(reversed(await self.cursor.fetch(10_000)))
        return self.buffer.pop() if self.buffer else None


async def build_chain(dsn: str) -> int:
    """Ledger entries for every loaded row, hashed in Python as the service does, COPYed in."""
    reader, writer = await connect(dsn), await connect(dsn)
    try:
        head = await ledger_head(reader)
        seq, prev = head.seq, head.hash
        entries: list[tuple[int, str, int, str, str]] = []
        async with reader.transaction(isolation="repeatable_read", readonly=True):
            streams = [_Stream(reader, table, rank) for rank, table in enumerate(COLUMNS)]
            heap = []
            for stream in streams:
                await _push(heap, stream)
            while heap:
                _, _, _, stream, row = heapq.heappop(heap)
                seq += 1
                digest = entry_hash(canonical_json(row["content"]), prev)
                entries.append((seq, stream.table, row["id"], prev, digest))
                prev = digest
                if len(entries) >= LEDGER_BATCH:
                    await writer.copy_records_to_table("ledger", records=entries, columns=_LEDGER_COLUMNS)
                    entries = []
                await _push(heap, stream)
        if entries:
            await writer.copy_records_to_table("ledger", records=entries, columns=_LEDGER_COLUMNS)
        return seq - head.seq
    finally:
        await reader.close()
        await writer.close()


_LEDGER_COLUMNS = ("seq", "kind", "ref_id", "prev_hash", "hash")


async def _push(heap: list, stream: _Stream) -> None:
    row = await stream.next()
    if row is not None:
        heapq.heappush(heap, (row["at"], stream.rank, row["id"], stream, row))


# --- ivr verify ---------------------------------------------------------------------------------


# The bench's own data directory: its checkpoints (and signing key) are the bench's alone.
DATA_DIR = Path(tempfile.mkdtemp(prefix="ivr-scale-"))


def run_ivr(dsn: str, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    env = {**os.environ, "DATABASE_URL": dsn, "IVR_FLOWS_DIR": "", "IVR_DATA_DIR": str(DATA_DIR)}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "ivr", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=VERIFY_TIMEOUT_S,
    )
    return time.perf_counter() - start, done


def time_verify(dsn: str, entries: int) -> None:
    startup, head = run_ivr(dsn, "verify", "--head")
    signing, signed = run_ivr(dsn, "checkpoint")  # the first: the whole tree from its first leaf
    elapsed, done = run_ivr(dsn, "verify")
    say(f"  `ivr verify --head` (process start-up, migrations check, no hashing): {startup:.2f} s")
    say(f"  `ivr checkpoint` (the tree over every entry, signed): {signing:.2f} s, exit {signed.returncode}")
    say(f"  `ivr verify` exit {done.returncode}: {(done.stdout or done.stderr).strip().splitlines()[-1:]}")
    say(
        f"  `ivr verify` over {entries:,} entries: {elapsed:.2f} s wall ({entries / elapsed:,.0f} entries/s); "
        f"target < 60 s: {'MET' if elapsed < 60 else 'MISSED'}"
    )
    if done.returncode != 0:
        say(done.stderr[-2000:])


# --- the staff API's lookup ------------------------------------------------------------------------


class _Recorder:
    """Passes queries through to a connection, keeping each (SQL, arguments) to EXPLAIN later."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.queries: list[tuple[str, tuple[Any, ...]]] = []

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        self.queries.append((sql, args))
        return await self.conn.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        self.queries.append((sql, args))
        return await self.conn.fetchrow(sql, *args)


async def person_consents(conn: Any, phone: str, rules: dict[str, int | None], as_of: datetime) -> dict:
    """What ``GET /api/subjects/{phone}/consents`` computes (ivr/api/staff.py), without HTTP and the audit."""
    accounts = await accounts_for_phone(conn, phone)
    return {
        subject: [
            await consent_state(conn, subject, purpose, as_of=as_of, opt_out_days=days)
            for purpose, days in sorted(rules.items())
        ]
        for subject in [phone, *accounts]
    }


async def time_lookups(pool: asyncpg.Pool, phones: list[str], rules: dict[str, int | None]) -> list[float]:
    as_of = datetime.now(UTC)
    timings = []
    for phone in phones:
        async with pool.acquire() as conn:
            start = time.perf_counter()
            await person_consents(conn, phone, rules, as_of)
            timings.append((time.perf_counter() - start) * 1000)
    return timings


async def explain_lookup(dsn: str, phone: str, rules: dict[str, int | None]) -> None:
    pool = await create_pool(dsn, command_timeout_s=QUERY_TIMEOUT_S, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            recorder = _Recorder(conn)
            await person_consents(recorder, phone, rules, datetime.now(UTC))
            shown: set[str] = set()
            for sql, args in recorder.queries:
                if sql in shown:
                    continue
                shown.add(sql)
                plan = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *args)
                say(f"\n  query ({len([q for q in recorder.queries if q[0] == sql])}x per lookup), args {args}:")
                say(textwrap.indent(textwrap.dedent(sql).strip("\n"), "    "))
                for line in plan:
                    say("    | " + line[0])
    finally:
        await pool.close()


async def lookup_bench(dsn: str, people: Population, samples: int, rng: random.Random) -> None:
    rules = purpose_rules(deployed_flows(None))
    chosen = rng.sample(people.people, min(samples, len(people.people)))
    phones = [p.phone for p in chosen]
    pool = await create_pool(dsn, command_timeout_s=QUERY_TIMEOUT_S, min_size=1, max_size=1)
    try:
        warm = await time_lookups(pool, phones, rules)
        timings = await time_lookups(pool, phones, rules)
    finally:
        await pool.close()
    say(
        f"  {len(phones)} people, {len(rules)} purposes each (+ their customer accounts); "
        f"cold first pass p50 {pct(warm, 0.5):.2f} ms, max {max(warm):.2f} ms"
    )
    p95 = pct(timings, 0.95)
    say(
        f"  warm: p50 {pct(timings, 0.5):.2f} ms, p95 {p95:.2f} ms, p99 {pct(timings, 0.99):.2f} ms, "
        f"max {max(timings):.2f} ms; target p95 <= 20 ms: {'MET' if p95 <= 20 else 'MISSED'}"
    )
    with_account = next((p for p in chosen if p.account), chosen[0])
    say(f"\n  EXPLAIN (ANALYZE, BUFFERS) of each query of one lookup ({with_account.phone}):")
    await explain_lookup(dsn, with_account.phone, rules)


# --- the run --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    verify_events: int
    lookup_events: int
    people: int
    samples: int


async def fresh_database(server: str) -> str:
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{BENCH_DB}"')
    finally:
        await admin.close()
    return with_database(server, BENCH_DB)


async def drop_database(server: str) -> None:
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
    finally:
        await admin.close()


async def timed(label: str, work: Awaitable[Any]) -> Any:
    start = time.perf_counter()
    result = await work
    say(f"  {label}: {time.perf_counter() - start:.1f} s")
    return result


async def prepare(dsn: str) -> dict[str, str]:
    """Migrated as `ivr migrate` does; the deployed flow versions stored (and chained) as at start-up."""
    owner = await connect(dsn)
    try:
        applied = await apply_migrations(owner)
        flows = deployed_flows(None)
        async with chained(owner) as chain:
            for flow in flows.values():
                await register_flow_version(chain, flow)
    finally:
        await owner.close()
    say(f"  migrations applied: {', '.join(f'{m.version:04d}_{m.name}' for m in applied)}")
    return {name: flow.version for name, flow in flows.items()}


async def load_customers(conn: asyncpg.Connection, people: Population) -> None:
    customers = [p for p in people.people if p.account]
    await conn.copy_records_to_table(
        "customers",
        records=[(p.account, f"Customer {p.account}") for p in customers],
        columns=("account_number", "name"),
    )
    await conn.copy_records_to_table(
        "customer_phones", records=[(p.phone, p.account) for p in customers], columns=("phone", "account_number")
    )


def _calls_for(rows_left: int, rows_per_call: int) -> int:
    """Calls still to make: an estimate that stops just past the target rather than a batch past it."""
    return -(-rows_left // rows_per_call)


def _evidence_rows(totals: dict[str, int]) -> int:
    return sum(totals.values())


async def verify_part(dsn: str, calls: Calls, sizes: Sizes) -> int:
    say(f"\n[1] `ivr verify` over ~{sizes.verify_events:,} ledger entries")
    conn = await connect(dsn)
    try:
        # The flow versions are already chained; stop once the rest reaches the size asked for.
        totals = await timed(
            "COPY calls, keypresses, notices, decisions, endings",
            load(
                conn,
                calls,
                keypresses=True,
                calls_left=lambda t: _calls_for(sizes.verify_events - 3 - _evidence_rows(t), 10),
            ),
        )
        say("    " + ", ".join(f"{table} {count:,}" for table, count in totals.items()))
        await timed("ANALYZE", conn.execute("ANALYZE"))
    finally:
        await conn.close()
    chained_rows = await timed("hash chain built in Python and COPYed into ledger", build_chain(dsn))
    entries = chained_rows + 3
    say(f"    ledger entries: {entries:,}")
    conn = await connect(dsn)
    try:
        await timed("ANALYZE ledger", conn.execute("ANALYZE ledger"))
    finally:
        await conn.close()
    time_verify(dsn, entries)
    return totals["consent_events"]


async def lookup_part(dsn: str, calls: Calls, people: Population, sizes: Sizes, have: int) -> None:
    say(f"\n[2] one person's consents among {sizes.lookup_events:,} consent events")
    conn = await connect(dsn)
    try:
        need = sizes.lookup_events - have
        totals = await timed(
            "COPY more calls, notices, decisions, endings (not chained)",
            load(conn, calls, keypresses=False, calls_left=lambda t: _calls_for(need - t["consent_events"], 3)),
        )
        say("    added " + ", ".join(f"{table} {count:,}" for table, count in totals.items() if count))
        await timed("ANALYZE", conn.execute("ANALYZE"))
        size = await conn.fetchval("SELECT pg_size_pretty(pg_total_relation_size('consent_events'))")
        count = await conn.fetchval("SELECT count(*) FROM consent_events")
        subjects = await conn.fetchval("SELECT count(DISTINCT subject) FROM consent_events")
        say(f"    consent_events: {count:,} rows, {subjects:,} distinct subjects, {size} with indexes")
    finally:
        await conn.close()
    await lookup_bench(dsn, people, sizes.samples, random.Random(7))


async def run(server: str, sizes: Sizes, keep: bool) -> None:
    rng = random.Random(20251106)
    say(f"database {BENCH_DB} on {urlsplit(server).hostname}; sizes {sizes}")
    dsn = await fresh_database(server)
    try:
        versions = await timed("migrate + store flow versions", prepare(dsn))
        people = Population(rng, sizes.people)
        conn = await connect(dsn)
        try:
            await timed(f"COPY {sizes.people:,} people's customer accounts", load_customers(conn, people))
        finally:
            await conn.close()
        # One timeline for both parts: ~2.5 decisions per call across the whole year.
        calls = Calls(rng, people, versions, int(max(sizes.lookup_events, sizes.verify_events) / 2.3))
        have = await verify_part(dsn, calls, sizes)
        if sizes.lookup_events:
            await lookup_part(dsn, calls, people, sizes, have)
    finally:
        if keep:
            say(f"\nkept database {BENCH_DB}: {dsn}")
        else:
            await drop_database(server)
            say(f"\ndropped database {BENCH_DB}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres", help="the server")
    parser.add_argument("--verify-events", type=int, default=1_000_000, help="ledger entries for `ivr verify`")
    parser.add_argument(
        "--lookup-events", type=int, default=5_000_000, help="consent events for the lookup (0: verify only)"
    )
    parser.add_argument("--people", type=int, default=500_000, help="distinct callers")
    parser.add_argument("--samples", type=int, default=500, help="people looked up")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 50k entries, 200k events, 20k people")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    if args.quick:
        sizes = Sizes(50_000, 200_000, 20_000, min(args.samples, 200))
    else:
        sizes = Sizes(args.verify_events, args.lookup_events, args.people, args.samples)
    asyncio.run(run(args.dsn, sizes, args.keep))


if __name__ == "__main__":
    main()
