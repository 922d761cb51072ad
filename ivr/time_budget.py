"""Twilio's time budget for a webhook, and every wait on a webhook's path derived from it.

Twilio waits 15 seconds for an answer to a voice webhook, then gives up on it (the
caller hears its stock error, or the call moves on) and may send the same webhook
again, to this or another process. Everything a webhook can wait on — a pooled
Postgres connection, a query, a Redis connection, a call's lock, the drain at shutdown —
has a timeout here, and together they fit inside that budget with room to answer
"nothing was recorded" in time. Nothing on a webhook's path waits without one.
"""

from __future__ import annotations

__all__ = [
    "CALL_LOCK_WAIT_S",
    "POOL_ACQUIRE_S",
    "QUERY_TIMEOUT_S",
    "REDIS_CONNECTION_WAIT_S",
    "SHUTDOWN_DRAIN_S",
    "TWILIO_PATIENCE_S",
]

TWILIO_PATIENCE_S = 15.0
# A query stuck longer than this is better failed (the caller hears nothing was
# recorded) than waited on: a third of the budget.
QUERY_TIMEOUT_S = TWILIO_PATIENCE_S / 3
# Waiting for a pooled Postgres connection: a burst queues for a moment, an exhausted
# pool fails in time to answer.
POOL_ACQUIRE_S = TWILIO_PATIENCE_S * 4 / 15
# A burst (a sibling process lost and all its calls arriving here) may find every
# Redis connection busy: wait a little for one rather than fail the webhook at once.
REDIS_CONNECTION_WAIT_S = TWILIO_PATIENCE_S * 4 / 15
# A copy of a committing webhook waits for the call's lock held by another delivery;
# it gives up a little before Twilio does, to say nothing was recorded.
CALL_LOCK_WAIT_S = TWILIO_PATIENCE_S - 3.0
# On SIGTERM, aiohttp gives webhooks in flight this long to finish and then, before
# cancelling them, this long again: half of Twilio's budget each, so a handler still
# running after that would answer no one (Twilio re-sends it, to a sibling).
SHUTDOWN_DRAIN_S = TWILIO_PATIENCE_S / 2
