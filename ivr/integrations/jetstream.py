"""Events to NATS JetStream, where a deployment already runs a broker (``EVENTS_NATS_URL``).

Every ``ivr serve`` process runs one publisher, off the webhook path, on a pool of its own
(one connection). It claims the stream's cursor row (``storage.publishers``: one process
at a time publishes, the others wait), reads the outbox after it in ledger order,
publishes each event's CloudEvents envelope (the webhooks' bytes) on
``<prefix><type>`` (``consent.events.consent.revoked``) with ``Nats-Msg-Id`` the event's
id, and moves the cursor only after JetStream acknowledged it. So an event is published
at least once, in order; a repeat (a process cut off between the ack and its commit, a
cursor set back) within the stream's duplicate window is dropped by JetStream itself.
When NATS or Postgres is away it waits and tries again, from the cursor.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg
import nats
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext

from ivr.integrations.envelope import envelope_body
from storage.outbox import events_after
from storage.publishers import advance_cursor, claim_cursor

__all__ = ["JetStreamTarget", "Publisher"]

log = structlog.get_logger(__name__)

# Events read and published per transaction: the cursor row is held that long.
BATCH = 100
# A JetStream ack normally takes milliseconds; past this the event is tried again later.
ACK_TIMEOUT_S = 5.0
# After NATS or Postgres failed the publisher, it waits this long before trying again.
OUTAGE_PAUSE_S = 2.0
# nats-py's own reconnect: forever, every two seconds (the publisher resumes from its cursor).
RECONNECT_WAIT_S = 2.0
CONNECT_TIMEOUT_S = 5.0

_FAILURES = (nats.errors.Error, asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


@dataclass(frozen=True)
class JetStreamTarget:
    """Where events go: the server, the stream, and the prefix of its subjects (ends with a dot)."""

    url: str
    stream: str
    subject_prefix: str

    def subject(self, event_type: str) -> str:
        return self.subject_prefix + event_type


class Publisher:
    """Publishes the outbox to one JetStream stream until cancelled."""

    def __init__(self, pool: asyncpg.Pool, target: JetStreamTarget, source: str, poll_interval_s: float) -> None:
        self._pool = pool
        self._target = target
        self._source = source
        self._poll_interval_s = poll_interval_s
        self.published = 0  # events JetStream acknowledged (for tests and logs)
        self.duplicates = 0  # of those, ones it already had (de-duplicated by Nats-Msg-Id)

    async def run(self) -> None:
        nc: Client | None = None
        try:
            while True:
                try:
                    if nc is None or nc.is_closed:
                        nc = await self._connect()
                    js = nc.jetstream()
                    await self._ensure_stream(js)
                    while True:
                        busy = await self._publish_batch(js)
                        if not busy:
                            await asyncio.sleep(self._poll_interval_s)
                except _FAILURES:
                    log.exception("events_not_published", stream=self._target.stream)
                    await asyncio.sleep(OUTAGE_PAUSE_S)
        finally:
            if nc is not None and not nc.is_closed:
                await nc.close()

    async def _connect(self) -> Client:
        return await nats.connect(
            self._target.url,
            name="consent-ivr-events",
            connect_timeout=CONNECT_TIMEOUT_S,
            reconnect_time_wait=RECONNECT_WAIT_S,
            max_reconnect_attempts=-1,
            error_cb=_log_nats_error,
        )

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        """The stream, made if missing: every subject under the prefix, JetStream's default limits."""
        try:
            await js.stream_info(self._target.stream)
        except nats.js.errors.NotFoundError:
            await js.add_stream(name=self._target.stream, subjects=[self._target.subject_prefix + ">"])
            log.info("event_stream_added", stream=self._target.stream)

    async def _publish_batch(self, js: JetStreamContext) -> bool:
        """Publish up to a batch after the cursor; True when there may be more straight away."""
        failure: Exception | None = None
        async with self._pool.acquire() as conn, conn.transaction():
            after = await claim_cursor(conn, self._target.stream)
            if after is None:
                return False  # another process is publishing
            events = await events_after(conn, after, BATCH)
            acked = after
            for event in events:
                try:
                    ack = await js.publish(
                        self._target.subject(event.type),
                        envelope_body(event, self._source),
                        timeout=ACK_TIMEOUT_S,
                        stream=self._target.stream,
                        headers={"Nats-Msg-Id": event.id},
                    )
                except (nats.errors.Error, OSError, TimeoutError) as error:
                    failure = error  # raised once the events acknowledged so far are committed
                    break
                self.published += 1
                self.duplicates += bool(ack.duplicate)
                acked = event.seq
            if acked != after:
                await advance_cursor(conn, self._target.stream, acked)
        if failure is not None:
            raise failure
        return len(events) == BATCH


async def _log_nats_error(error: Exception) -> None:
    log.warning("nats_error", error=repr(error))  # nats-py reconnects by itself
