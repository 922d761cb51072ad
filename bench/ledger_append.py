"""How long an evidence append holds the ledger lock, and what concurrent writers get.

    python bench/ledger_append.py [--dsn postgresql://postgres@127.0.0.1/postgres] [--events 2000] [--rounds 3]

Creates a scratch database on the server (or an embedded Postgres without --dsn), migrates
it (once as of migration 0021, once up to date, for a before/after of the event outbox of
0022-0027: link_entries writes an event for every decision it chains; the two take turns over
--rounds, and each side's median is compared), then measures, per
transaction, the time from calling ledger_append (which takes the lock) to the end of
COMMIT (which releases it): that is the lock's hold time. It then runs 8 concurrent writers
the old way (a transaction of four round trips) and the webhook way (one statement), and
200 webhooks at once through the service's group-commit appender, and prints their
throughput and end-to-end latency. Every append on the webhook path is a decision's: a PIN
check and the consent event it confirms (the second makes an event from 0022 on).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg  # noqa: E402

from ivr.time_budget import POOL_ACQUIRE_S, QUERY_TIMEOUT_S  # noqa: E402
from storage.appender import appender  # noqa: E402
from storage.embedded import embedded_postgres  # noqa: E402
from storage.ledger import Chain, EvidenceRow, append  # noqa: E402
from storage.migrator import apply_migrations  # noqa: E402
from storage.postgres import as_service_role, connect, create_pool  # noqa: E402

INSERT = "INSERT INTO pin_checks (account_number, call_sid, ok) VALUES ($1, $2, $3)"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one(pool: asyncpg.Pool, n: int) -> tuple[float, float]:
    """(whole transaction, lock held) in milliseconds."""
    async with pool.acquire() as conn:
        start = time.perf_counter()
        tx = conn.transaction()
        await tx.start()
        chain = Chain(conn)
        await chain.insert("pin_checks", INSERT, "90001", f"CA-bench-{n}", n % 2 == 0)
        locked = time.perf_counter()
        await chain.seal()
        await tx.commit()
        end = time.perf_counter()
    return (end - start) * 1000, (end - locked) * 1000


async def one_statement(pool: asyncpg.Pool, n: int) -> tuple[float, float]:
    """The webhook path: insert and chain in one statement, its own transaction."""
    async with pool.acquire() as conn:
        start = time.perf_counter()
        await append(conn, decision(n))
        end = time.perf_counter()
    return (end - start) * 1000, 0.0


def pin_check(n: int) -> EvidenceRow:
    return EvidenceRow("pin_checks", {"account_number": "90001", "call_sid": f"CA-bench-{n}", "ok": n % 2 == 0})


BENCH_CALL = "CA" + "b" * 32
BENCH_FLOW = "f" * 64


def decision(n: int) -> list[EvidenceRow]:
    """What a decision's webhook appends: the PIN check and the consent event (one revocation in four)."""
    action = "revoke" if n % 4 == 0 else "grant"
    consent = {
        "call_sid": BENCH_CALL,
        "seq": n,
        "subject": f"+1415555{n % 10_000:04d}",
        "purpose": "telemarketing",
        "action": action,
        "channel": "keypad",
        "raw_digits": "221",
        "caller_number": f"+1415555{n % 10_000:04d}",
        "dialed_number": "+18005550100",
        "identification": "ani",
        "flow_name": "consent-line",
        "flow_version": BENCH_FLOW,
        "prompt_text": "To stop telemarketing calls, press 1.",
        "lang": "en",
        "idempotency_token": f"bench-{n}",
        "honor_by": "2026-12-15" if action == "revoke" else None,
    }
    return [pin_check(n), EvidenceRow("consent_events", consent)]


async def the_call(pool: asyncpg.Pool) -> None:
    """The flow version and the call every benchmark decision belongs to."""
    async with pool.acquire() as conn:
        await append(
            conn, [EvidenceRow("flow_versions", {"version": BENCH_FLOW, "name": "consent-line", "definition": {}})]
        )
        call = {
            "call_sid": BENCH_CALL,
            "account_sid": "AC" + "b" * 32,
            "caller_number": "+14155550000",
            "dialed_number": "+18005550100",
            "direction": "inbound",
            "flow_name": "consent-line",
            "flow_version": BENCH_FLOW,
        }
        await append(conn, [EvidenceRow("calls", call)])


async def concurrent(pool: asyncpg.Pool, events: int, label: str, write, base: int = 0) -> float:
    latencies: list[float] = []

    async def writer(w: int) -> None:
        for n in range(events // 8):
            total, _ = await write(pool, base + w * events + n)
            latencies.append(total)

    start = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(8)))
    elapsed = time.perf_counter() - start
    print(
        f"{label}: {len(latencies) / elapsed:.0f} appends/s, "
        f"p50 {statistics.median(latencies):.2f} ms, p99 {pct(latencies, 0.99):.2f} ms"
    )
    return len(latencies) / elapsed


async def grouped(pool: asyncpg.Pool, events: int, base: int = 0) -> float:
    """What the service does: webhooks hand rows to a shared appender (group commit)."""
    latencies: list[float] = []
    async with appender(pool, acquire_timeout_s=POOL_ACQUIRE_S) as writing:

        async def webhook(n: int) -> None:
            start = time.perf_counter()
            await writing.append(decision(n))
            latencies.append((time.perf_counter() - start) * 1000)

        start = time.perf_counter()
        for wave in range(0, events * 4, 200):  # 200 webhooks in flight
            await asyncio.gather(*(webhook(base + 100 * events + wave + i) for i in range(200)))
        elapsed = time.perf_counter() - start
        print(
            f"200 webhooks at once through the group-commit appender: {len(latencies) / elapsed:.0f} appends/s "
            f"in {writing.statements} statements, p50 {statistics.median(latencies):.2f} ms, "
            f"p99 {pct(latencies, 0.99):.2f} ms"
        )
        return len(latencies) / elapsed


# The last schema without the event outbox; since 0022 (0027: inside link_entries) an event
# is written for every decision, request and request status change, in the same transaction.
# The webhook path (append_evidence) is compared on both, in this one run.
BEFORE_OUTBOX = 21


async def migrated_pool(dsn: str, through: int | None) -> asyncpg.Pool:
    owner = await connect(dsn)
    await apply_migrations(owner, through=through)
    await owner.close()
    pool = await create_pool(as_service_role(dsn), command_timeout_s=QUERY_TIMEOUT_S, min_size=8, max_size=8)
    await the_call(pool)
    return pool


async def webhook_paths(pool: asyncpg.Pool, events: int, base: int) -> dict[str, float]:
    """The webhook path's two ways, on one schema: one statement each, and group commit."""
    return {
        "statement": await concurrent(
            pool, events, "8 writers, one statement each (append_evidence)", one_statement, base
        ),
        "grouped": await grouped(pool, events, base),
    }


async def lock_hold(pool: asyncpg.Pool, events: int, base: int) -> None:
    solo = [await one(pool, base + n) for n in range(events)]
    holds = [h for _, h in solo]
    print(
        f"single writer, {events} appends: lock held p50 {pct(holds, 0.5):.3f} ms, "
        f"p99 {pct(holds, 0.99):.3f} ms, max {max(holds):.3f} ms"
    )
    await concurrent(pool, events, "8 writers, a transaction each (BEGIN, INSERT, ledger_append, COMMIT)", one, base)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="a Postgres server DSN (default: an embedded Postgres)")
    parser.add_argument("--events", type=int, default=2000)
    # Before and after take turns (the order swapped each round), so a neighbour's load on
    # a shared machine falls on both alike; the figures compared are each side's median.
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    schemas = {"before": BEFORE_OUTBOX, "after": None}
    with contextlib.ExitStack() as stack:
        server = args.dsn or stack.enter_context(embedded_postgres(Path(tempfile.mkdtemp())))
        admin = await asyncpg.connect(server)
        names = {label: "ivr_bench_" + secrets.token_hex(4) for label in schemas}
        pools: dict[str, asyncpg.Pool] = {}
        figures: dict[str, dict[str, list[float]]] = {label: {"statement": [], "grouped": []} for label in schemas}
        try:
            for label, through in schemas.items():
                await admin.execute(f'CREATE DATABASE "{names[label]}"')
                dsn = urlunsplit(urlsplit(server)._replace(path="/" + names[label]))
                pools[label] = await migrated_pool(dsn, through)
            for round_no in range(args.rounds):
                order = list(schemas) if round_no % 2 == 0 else list(reversed(schemas))
                for label in order:
                    schema = f"through {schemas[label]:04d}" if schemas[label] else "up to date"
                    print(f"== round {round_no + 1}, {label}: schema {schema}")
                    paths = await webhook_paths(pools[label], args.events, base=round_no * 1_000 * args.events)
                    for path, rate in paths.items():
                        figures[label][path].append(rate)
            print("== after: how long an append holds the ledger's lock")
            await lock_hold(pools["after"], args.events, base=(args.rounds + 1) * 1_000 * args.events)
        finally:
            for pool in pools.values():
                await pool.close()
            for name in names.values():
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
        for path in ("statement", "grouped"):
            before, after = (statistics.median(figures[label][path]) for label in ("before", "after"))
            print(
                f"after/before, {path} (median of {args.rounds}): {after / before:.2f}x "
                f"({before:.0f} -> {after:.0f} appends/s)"
            )


if __name__ == "__main__":
    asyncio.run(main())
