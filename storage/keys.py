"""Redis key names and lifetimes, in one place.

Every key of a call is hash-tagged with its CallSid (``{CA...}``) so that on Redis
Cluster all of one call's keys live on one shard and a Lua script may touch them all.
"""

from __future__ import annotations

__all__ = [
    "CALL_LOCK_RENEW_S",
    "CALL_LOCK_TTL_MS",
    "CALL_SESSION_TTL_S",
    "ENDED_SESSION_TTL_S",
    "lock_key",
    "session_key",
]

# Twilio ends any call after 4 hours by default (timeLimit 14400 s); late callbacks
# (status, recordings) follow within minutes. A session outliving the longest call by
# an hour is never lost mid-call and never lingers.
CALL_SESSION_TTL_S = 5 * 60 * 60
# Once the call's ending is stored, its session is kept only for a duplicated status
# callback (which then behaves exactly like the first): Redis holds the calls in flight.
ENDED_SESSION_TTL_S = 120

# One committing webhook of a call at a time. The holder renews its lock every
# CALL_LOCK_RENEW_S while it works, so a live handler never loses it however slow
# Postgres is, and a killed process's lock lapses within seconds: a copy of the webhook
# re-sent to another process then gets the call well inside Twilio's 15 s. How long a
# waiting delivery waits is the caller's to say (the service: ivr.time_budget).
CALL_LOCK_TTL_MS = 3_000
CALL_LOCK_RENEW_S = 1.0

SESSION_PREFIX = "ivr:call:"
LOCK_PREFIX = "ivr:lock:"


def session_key(call_sid: str) -> str:
    return f"{SESSION_PREFIX}{{{call_sid}}}"


def lock_key(call_sid: str) -> str:
    return f"{LOCK_PREFIX}{{{call_sid}}}"
