"""Evidence from concurrent webhooks appended together: group commit, done by the service.

Every append to the ledger holds its lock until the transaction's commit reaches disk,
so appends one by one are as many as the disk can flush one after another, however many
callers wait. Webhooks here hand their rows to a writer that takes everything waiting
and appends it in one statement: one lock, one flush, for all of them. Each webhook
still learns, before it answers its caller, whether its own rows were committed.

A batch that Postgres refuses for its content (a constraint) is split up so one bad row
cannot fail the others; a batch that fails for want of Postgres fails as a whole.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from storage.background import stop
from storage.ledger import EvidenceRow, append

__all__ = ["Appender", "appender"]

# Rows per statement: a few hundred calls' worth, a few milliseconds of work.
MAX_BATCH_ROWS = 1_000
# Two writers: one batch inserts while the other holds the ledger lock and flushes.
WRITERS = 2

_Waiting = tuple[list[EvidenceRow], asyncio.Future[None]]


class Appender:
    """Appends evidence for many webhooks at once; ``append`` returns once its rows are committed."""

    def __init__(self, pool: asyncpg.Pool, *, acquire_timeout_s: float) -> None:
        self._pool = pool
        # Webhooks wait on these appends: the caller's time budget bounds the wait for a connection.
        self._acquire_timeout_s = acquire_timeout_s
        self._queue: asyncio.Queue[_Waiting] = asyncio.Queue()
        self.statements = 0  # how many statements carried the appends (for tests and benchmarks)

    async def append(self, rows: list[EvidenceRow]) -> None:
        """Commit and chain ``rows``; raises what Postgres raised if they were not committed."""
        if not rows:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.add_done_callback(_observed)  # its outcome is read even if the caller stopped waiting
        self._queue.put_nowait((rows, done))
        await asyncio.shield(done)  # a caller that stops waiting must not cancel others' batch

    async def run(self) -> None:
        await asyncio.gather(*(self._write_forever() for _ in range(WRITERS)))

    async def _write_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            size = len(batch[0][0])
            while not self._queue.empty() and size < MAX_BATCH_ROWS:
                batch.append(self._queue.get_nowait())
                size += len(batch[-1][0])
            await self._write(batch)

    async def _write(self, batch: list[_Waiting]) -> None:
        try:
            async with self._pool.acquire(timeout=self._acquire_timeout_s) as conn:
                try:
                    await self._append(conn, [row for rows, _ in batch for row in rows])
                    _settle(batch, None)
                except asyncpg.PostgresError as refused:
                    if len(batch) == 1:
                        raise
                    del refused  # content refused: each webhook's rows on their own
                    for waiting in batch:
                        await self._write_alone(conn, waiting)
        except Exception as failed:  # noqa: BLE001 - handed to every waiting webhook, which decides
            _settle(batch, failed)

    async def _write_alone(self, conn: PoolConnectionProxy[asyncpg.Record], waiting: _Waiting) -> None:
        rows, done = waiting
        try:
            await self._append(conn, rows)
            _settle([waiting], None)
        except asyncpg.PostgresError as refused:
            _settle([waiting], refused)

    async def _append(self, conn: PoolConnectionProxy[asyncpg.Record], rows: list[EvidenceRow]) -> None:
        self.statements += 1
        await append(conn, rows)


def _observed(done: asyncio.Future[None]) -> None:
    if not done.cancelled():
        done.exception()


def _settle(batch: list[_Waiting], failed: BaseException | None) -> None:
    for _, done in batch:
        if done.done():
            continue
        if failed is None:
            done.set_result(None)
        else:
            done.set_exception(failed)


@contextlib.asynccontextmanager
async def appender(pool: asyncpg.Pool, *, acquire_timeout_s: float) -> AsyncIterator[Appender]:
    """An appender whose writers run until the block ends (after the web server has drained)."""
    writing = Appender(pool, acquire_timeout_s=acquire_timeout_s)
    task = asyncio.create_task(writing.run())
    try:
        yield writing
    finally:
        await stop(task)
