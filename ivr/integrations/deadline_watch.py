"""Revocations watched against their honor-by dates: one alert per revocation that goes overdue.

Every ``ivr serve`` process looks every ``WATCH_INTERVAL_S`` (in the delivery worker's
context, on its pool) for revocations past their honor-by date that a subscription owed
them has not applied (``storage.revocations_due``), and logs ``ALERT_revocation_overdue``
(ERROR) for each it has not alerted on before.

"Before" is remembered in Redis (``SET NX``), not chained: the alert is an operational
signal, not evidence — the evidence of lateness is already in the ledger (the decision, its
honor-by date, and the receipts or their absence) — and a chained row per alert would put
an ops notification in the append-only ledger for good and need a migration. ``SET NX`` is
atomic, so of several processes only one logs. If Redis loses the key (a flush, a restart
without persistence) the alert is logged again: a repeat errs on the side of telling.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, tzinfo

import asyncpg
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from storage.deadlines import local_date
from storage.outbox import event_id
from storage.revocations_due import overdue_revocations

__all__ = ["ALERTED_PREFIX", "alert_overdue", "business_today", "watch_deadlines"]

log = structlog.get_logger(__name__)

ALERTED_PREFIX = "ivr:alerted:revocation_overdue:"
# Longer than any revocation should stay overdue: one still not applied a year on is
# alerted on again, once a year — a reminder, deliberately, rather than silence.
ALERTED_TTL_S = 366 * 86_400
# Honor-by dates are days: looking every five minutes alerts within minutes of midnight
# in the business's time zone, at the cost of one query per process.
WATCH_INTERVAL_S = 300.0


def business_today(business_tz: tzinfo) -> date:
    """Today's date where the business is (honor-by dates are counted there)."""
    return local_date(datetime.now(UTC), business_tz)


async def alert_overdue(pool: asyncpg.Pool, redis: Redis, today: date) -> int:
    """Log ``ALERT_revocation_overdue`` for each revocation overdue on ``today`` not alerted on yet; how many."""
    async with pool.acquire() as conn:
        late = await overdue_revocations(conn, today)
    alerted = 0
    for row in late:
        # Keyed by the decision's own id (a UUID), not the event's seq: a seq is reused by another
        # database (a restore, a second deployment) sharing the Redis, a decision id never.
        if await redis.set(f"{ALERTED_PREFIX}{row['decision_id']}", today.isoformat(), nx=True, ex=ALERTED_TTL_S):
            log.error(
                "ALERT_revocation_overdue",
                event_id=event_id(row["seq"]),
                purpose=row["purpose"],
                honor_by=row["honor_by"].isoformat(),
            )
            alerted += 1
    return alerted


async def watch_deadlines(pool: asyncpg.Pool, redis: Redis, business_tz: tzinfo) -> None:
    """Until cancelled: alert on revocations that went overdue (``WATCH_INTERVAL_S`` apart)."""
    while True:
        try:
            await alert_overdue(pool, redis, business_today(business_tz))
        except (asyncpg.PostgresError, asyncpg.InterfaceError, RedisError, OSError, TimeoutError):
            log.exception("revocation_deadlines_not_watched")  # the next look tries again
        await asyncio.sleep(WATCH_INTERVAL_S)
