"""One Redis subscription per process for every agent's live transfer events.

An event stream (``GET /api/transfers/{id}/events``) used to hold a pooled Redis
connection for as long as it lasted, so a hundred idle streams took every connection
the phone line needed. Now one subscriber per process, on a connection of its own,
listens to every transfer's channel and hands each event to the streams following that
transfer through a bounded queue each. Streams hold no Redis connection at all, and how
many may be open is capped per token and per process (``StreamLimitReached`` beyond).

Whenever the subscriber (re)subscribes — at start, after the connection dropped, after
Redis restarted — every stream is told to read its history again from Postgres, where
each event is stored before it is published: what was published meanwhile is not lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any
from uuid import UUID

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ivr.ops.tasks import in_background

__all__ = [
    "TRANSFER_CHANNEL",
    "Ending",
    "Signal",
    "StreamLimitReached",
    "StreamLimits",
    "Subscription",
    "TransferFeed",
    "transfer_feed",
]

log = structlog.get_logger(__name__)

TRANSFER_CHANNEL = "ivr:transfer:{}"
TRANSFER_CHANNELS = TRANSFER_CHANNEL.format("*")  # the subscriber's one pattern

# A transfer has a handful of events; a stream this far behind has a client that is not
# reading, and is closed rather than buffered without end (its client reconnects).
QUEUE_LIMIT = 64
# How soon a stream whose client went away ends and frees its slot: the socket's state is
# looked at this often, for every stream at once (aiohttp tells a handler nothing itself).
LISTENER_CHECK_S = 0.25
# After a failed (re)connection the subscriber tries again, backing off up to this.
RECONNECT_FIRST_S = 0.1
RECONNECT_MAX_S = 5.0
# The subscriber pings an idle connection this often, so a silently dead one is noticed.
HEALTH_CHECK_S = 15.0
# What a refused stream is told to wait: slots free when transfers end or agents leave,
# which nothing predicts; ten seconds keeps a retrying client from hammering.
RETRY_AFTER_S = 10


class Ending(StrEnum):
    """Why the feed ended a stream before its transfer did."""

    OVERFLOW = "overflow"  # QUEUE_LIMIT events behind: its client is not reading
    LISTENER_GONE = "listener_gone"  # its client disconnected
    SHUTDOWN = "shutdown"  # the process is stopping


class Signal(Enum):
    """What a stream gets instead of an event."""

    RESYNC = "resync"  # read the transfer's history (again): events may have been missed
    HEARTBEAT = "heartbeat"  # nothing for a while: say so, to keep proxies from closing
    ENDED = "ended"  # the feed ended the stream (``Subscription.ended`` says why)


@dataclass(frozen=True)
class StreamLimits:
    per_token: int
    per_process: int


class StreamLimitReached(Exception):
    """A stream was refused: too many open for its token, or in this process."""

    def __init__(self, message: str, retry_after_s: int = RETRY_AFTER_S) -> None:
        super().__init__(message)
        self.message, self.retry_after_s = message, retry_after_s


class Subscription:
    """One stream's place in the feed: its transfer's events in order, and signals."""

    def __init__(self, transfer_id: UUID, token_id: int, listening: Callable[[], bool]) -> None:
        self.transfer_id, self.token_id, self.listening = transfer_id, token_id, listening
        self.ended: Ending | None = None
        self._resync = True  # a new stream reads the history first
        # None only wakes the reader up, to look at ``ended`` and ``_resync``.
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(QUEUE_LIMIT)

    def deliver(self, event: dict[str, Any]) -> None:
        if self.ended is not None:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.end(Ending.OVERFLOW)

    def resync(self) -> None:
        self._resync = True
        self._wake()

    def end(self, why: Ending) -> None:
        if self.ended is None:
            self.ended = why
            self._wake()

    async def next(self, heartbeat_s: float) -> dict[str, Any] | Signal:
        """The next event or signal; ``Signal.HEARTBEAT`` after ``heartbeat_s`` of nothing."""
        while True:
            if self.ended is not None:
                return Signal.ENDED
            if self._resync:
                self._resync = False
                return Signal.RESYNC
            try:
                async with asyncio.timeout(heartbeat_s):  # not wait_for: on 3.11 it can swallow a cancel
                    item = await self._queue.get()
            except TimeoutError:
                return Signal.HEARTBEAT
            if item is not None and self.ended is None:
                return item

    def _wake(self) -> None:
        # A full queue has a reader that is not waiting: it sees the flags after its next get.
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)


class TransferFeed:
    """The process's one subscriber to transfer news, and the streams it serves."""

    def __init__(self, redis: Redis, limits: StreamLimits) -> None:
        self._redis, self._limits = redis, limits
        self._following: defaultdict[str, set[Subscription]] = defaultdict(set)
        self._per_token: Counter[int] = Counter()
        self._open = 0
        self.subscriptions_made = 0  # how often the subscriber has (re)subscribed
        self._subscribed = asyncio.Event()

    @property
    def open_streams(self) -> int:
        return self._open

    async def wait_subscribed(self) -> None:
        """Until the subscriber is subscribed (it is again soon after a reconnection)."""
        await self._subscribed.wait()

    @contextlib.asynccontextmanager
    async def subscribe(
        self, transfer_id: UUID, token_id: int, listening: Callable[[], bool]
    ) -> AsyncIterator[Subscription]:
        """A slot for one stream while the block runs; ``listening()`` false ends it."""
        if self._open >= self._limits.per_process:
            raise StreamLimitReached(f"this server is serving its limit of {self._limits.per_process} event streams")
        if self._per_token[token_id] >= self._limits.per_token:
            raise StreamLimitReached(
                f"this token already has {self._limits.per_token} event streams open here; close one first"
            )
        subscription = Subscription(transfer_id, token_id, listening)
        channel = TRANSFER_CHANNEL.format(transfer_id)
        self._following[channel].add(subscription)
        self._per_token[token_id] += 1
        self._open += 1
        try:
            yield subscription
        finally:
            self._open -= 1
            self._per_token[token_id] -= 1
            if not self._per_token[token_id]:
                del self._per_token[token_id]
            followers = self._following[channel]
            followers.discard(subscription)
            if not followers:
                del self._following[channel]

    def end_all(self, why: Ending) -> None:
        for subscription in self._subscriptions():
            subscription.end(why)

    async def listen(self) -> None:
        """The subscriber: (re)connect, subscribe, hand out what arrives; until cancelled."""
        delay = RECONNECT_FIRST_S
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.psubscribe(TRANSFER_CHANNELS)
                    while True:
                        message = await pubsub.get_message(timeout=HEALTH_CHECK_S / 3)
                        if message is not None:
                            self._dispatch(message)
                            delay = RECONNECT_FIRST_S
            except (RedisError, OSError) as exc:
                self._subscribed.clear()
                log.warning("transfer_feed_disconnected", error=type(exc).__name__, retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)

    async def watch_listeners(self) -> None:
        """End every stream whose client went away, within LISTENER_CHECK_S; until cancelled."""
        while True:
            await asyncio.sleep(LISTENER_CHECK_S)
            for subscription in self._subscriptions():
                if not subscription.listening():
                    subscription.end(Ending.LISTENER_GONE)

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message["type"] == "psubscribe":
            # Subscribed again (redis-py also re-subscribes by itself after a reconnection):
            # anything published while we were not may be missing, so every stream re-reads.
            self.subscriptions_made += 1
            self._subscribed.set()
            for subscription in self._subscriptions():
                subscription.resync()
            return
        if message["type"] != "pmessage" or message["channel"] not in self._following:
            return
        try:
            event = json.loads(message["data"])
        except ValueError:
            log.warning("transfer_feed_unreadable_message", channel=message["channel"])
            return
        for subscription in list(self._following[message["channel"]]):
            subscription.deliver(event)

    def _subscriptions(self) -> list[Subscription]:
        return [subscription for followers in self._following.values() for subscription in followers]


@contextlib.asynccontextmanager
async def transfer_feed(redis_url: str, limits: StreamLimits) -> AsyncIterator[TransferFeed]:
    """The feed, its subscriber and its listener check running while the block runs."""
    # A client of its own: the subscriber's connection is never one of the pool's.
    redis = Redis.from_url(
        redis_url, decode_responses=True, health_check_interval=HEALTH_CHECK_S, client_name="ivr-transfer-feed"
    )
    feed = TransferFeed(redis, limits)
    try:
        async with (
            in_background(feed.listen(), "transfer-feed"),
            in_background(feed.watch_listeners(), "transfer-feed-listeners"),
        ):
            yield feed
            feed.end_all(Ending.SHUTDOWN)
    finally:
        await redis.aclose()
