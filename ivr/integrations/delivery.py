"""The delivery worker: events to subscribers, signed, retried, at least once, in order per subject.

Every ``ivr serve`` process runs one, on its own small pool (the webhooks' pool is never
waited on). It hands new events to deliveries, leases the due ones (any number of
processes share the work: ``storage.deliveries``), and sends each as a Standard Webhooks
request: ``webhook-id`` (the event's id, the same on every attempt), ``webhook-timestamp``,
``webhook-signature``. A 2xx is a success (chained as a receipt); 410 disables the
subscription; anything else, a timeout or a refused target is retried on the schedule,
``Retry-After`` honoured, and dead-lettered after the last attempt. Redirects are not
followed (a 3xx is a failure): the target was checked, wherever it points was not.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import aiohttp
import asyncpg
import structlog

from ivr.integrations.envelope import envelope_body
from ivr.integrations.signing import signature_header
from ivr.integrations.targets import TargetRefused, check_url
from storage.deliveries import Claimed, claim, fan_out, record_failure, record_gone, record_success
from storage.outbox import event_by_id
from storage.subscriptions import Subscription, find_subscription

__all__ = ["DeliveryPolicy", "Deliverer", "Outcome"]

log = structlog.get_logger(__name__)

# A receiver asking for more than a day is taken at a day: the schedule then goes on.
MAX_RETRY_AFTER_S = 86_400.0
# Each wait is the schedule's give or take this fraction, so retries from a burst spread out.
JITTER = 0.2
# After Postgres failed the worker, it waits this long before asking again.
OUTAGE_PAUSE_S = 5.0
USER_AGENT = "consent-ivr-webhooks/1"


@dataclass(frozen=True)
class DeliveryPolicy:
    timeout_s: float
    lease_s: float
    retry_schedule_s: tuple[float, ...]
    concurrency: int
    poll_interval_s: float
    allow_private: bool

    def retry_in(self, attempt: int, retry_after_s: float | None) -> timedelta | None:
        """The wait before attempt ``attempt + 1``, or None: that was the last."""
        if attempt > len(self.retry_schedule_s):
            return None
        wait = self.retry_schedule_s[attempt - 1] * random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311 - jitter
        if retry_after_s is not None:
            wait = max(wait, min(retry_after_s, MAX_RETRY_AFTER_S))
        return timedelta(seconds=wait)


@dataclass(frozen=True)
class Outcome:
    status: int | None  # the HTTP status, None when no answer came
    error: str
    retry_after_s: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Deliverer:
    """Sends due deliveries, at most ``policy.concurrency`` at once, until cancelled."""

    def __init__(self, pool: asyncpg.Pool, http: aiohttp.ClientSession, policy: DeliveryPolicy, source: str) -> None:
        self._pool = pool
        self._http = http
        self._policy = policy
        self._source = source
        self.attempts = 0  # requests sent (for tests and logs)

    async def run(self) -> None:
        in_flight: set[asyncio.Task[None]] = set()
        try:
            while True:
                free = self._policy.concurrency - len(in_flight)
                claimed = await self._claim(free) if free > 0 else []
                for delivery in claimed:
                    task = asyncio.create_task(self._deliver(delivery), name=f"delivery-{delivery.id}")
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                if claimed and len(claimed) == free:
                    continue  # more may be due: look again as soon as a slot frees
                if in_flight:
                    await asyncio.wait(in_flight, timeout=self._policy.poll_interval_s)
                else:
                    await asyncio.sleep(self._policy.poll_interval_s)
        finally:
            # Cut short: the leases run out and another process (or this one restarted) sends them.
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)

    async def _claim(self, free: int) -> list[Claimed]:
        try:
            async with self._pool.acquire() as conn:
                await fan_out(conn)
                return await claim(conn, free, timedelta(seconds=self._policy.lease_s))
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
            log.exception("event_deliveries_not_claimed")
            await asyncio.sleep(OUTAGE_PAUSE_S)
            return []

    async def _deliver(self, delivery: Claimed) -> None:
        try:
            async with self._pool.acquire() as conn:
                subscription = await find_subscription(conn, delivery.subscription_id)
                event = await event_by_id(conn, delivery.seq)
            if subscription is None or event is None or not subscription.active:
                return  # disabled or removed since the claim: the lease runs out, the claim query skips it
            outcome = await self._send(subscription, event.id, envelope_body(event, self._source))
            await self._record(delivery, subscription, outcome)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
            # The outcome is lost, not the delivery: its lease runs out and it is sent again.
            log.exception("event_delivery_not_recorded", subscription=delivery.subscription_id, seq=delivery.seq)

    async def _send(self, subscription: Subscription, msg_id: str, body: bytes) -> Outcome:
        timestamp = int(time.time())
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(
                subscription.signing_secrets(datetime.now(UTC)), msg_id, timestamp, body
            ),
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        self.attempts += 1
        try:
            check_url(subscription.url, allow_private=self._policy.allow_private)
            async with self._http.post(
                subscription.url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self._policy.timeout_s),
            ) as response:
                return Outcome(response.status, f"HTTP {response.status}", _retry_after(response))
        except TargetRefused as exc:
            return Outcome(None, f"target refused: {exc.message}")
        except TimeoutError:
            return Outcome(None, f"no answer within {self._policy.timeout_s:g} s")
        except aiohttp.ClientError as exc:
            return Outcome(None, f"{type(exc).__name__}: {exc}")

    async def _record(self, delivery: Claimed, subscription: Subscription, outcome: Outcome) -> None:
        async with self._pool.acquire() as conn:
            if outcome.delivered:
                assert outcome.status is not None
                await record_success(conn, delivery, outcome.status, subscription.url)
                return
            if outcome.status == 410:
                await record_gone(conn, delivery, "the endpoint answered 410 Gone")
                log.warning("event_subscription_disabled", subscription=subscription.id, status=410)
                return
            retry_in = self._policy.retry_in(delivery.attempt, outcome.retry_after_s)
            await record_failure(conn, delivery, outcome.status, outcome.error, retry_in)
        log.warning(
            "event_delivery_failed" if retry_in else "event_delivery_dead",
            subscription=subscription.id,
            seq=delivery.seq,
            attempt=delivery.attempt,
            error=outcome.error,
        )


def _retry_after(response: aiohttp.ClientResponse) -> float | None:
    """``Retry-After``: seconds, or an HTTP date; None when absent or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None
