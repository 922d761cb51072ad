"""How long an evidence append holds the ledger lock, and what concurrent writers get.

    python bench/ledger_append.py [--dsn postgresql://postgres@127.0.0.1/postgres] [--events 2000]

Creates a scratch database on the server (or an embedded Postgres without --dsn), migrates
it, then measures, per transaction, the time from calling ledger_append (which takes the
lock) to the end of COMMIT (which releases it): that is the lock's hold time. It then
runs 8 concurrent writers and prints their throughput and end-to-end latency.
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

from storage.embedded import embedded_postgres  # noqa: E402
from storage.ledger import Chain  # noqa: E402
from storage.migrator import apply_migrations  # noqa: E402
from storage.postgres import connect, create_pool  # noqa: E402

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


async def bench(dsn: str, events: int) -> None:
    owner = await connect(dsn)
    await apply_migrations(owner)
    await owner.close()
    pool = await create_pool(dsn, min_size=8, max_size=8)
    try:
        solo = [await one(pool, n) for n in range(events)]
        holds = [h for _, h in solo]
        print(
            f"single writer, {events} appends: lock held p50 {pct(holds, 0.5):.3f} ms, "
            f"p99 {pct(holds, 0.99):.3f} ms, max {max(holds):.3f} ms"
        )
        latencies: list[float] = []

        async def writer(w: int) -> None:
            for n in range(events // 8):
                total, _ = await one(pool, events + w * events + n)
                latencies.append(total)

        start = time.perf_counter()
        await asyncio.gather(*(writer(w) for w in range(8)))
        elapsed = time.perf_counter() - start
        print(
            f"8 concurrent writers, {len(latencies)} appends: {len(latencies) / elapsed:.0f} appends/s, "
            f"transaction p50 {statistics.median(latencies):.2f} ms, p99 {pct(latencies, 0.99):.2f} ms"
        )
    finally:
        await pool.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="a Postgres server DSN (default: an embedded Postgres)")
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        server = args.dsn or stack.enter_context(embedded_postgres(Path(tempfile.mkdtemp())))
        name = "ivr_bench_" + secrets.token_hex(4)
        admin = await asyncpg.connect(server)
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            await bench(urlunsplit(urlsplit(server)._replace(path="/" + name)), args.events)
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
