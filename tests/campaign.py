"""A fault campaign: many concurrent calls, every webhook delivered one to three times
(some concurrently, some late and out of order), optionally a fault in the middle; then
every call's answers are reconciled against the ledger.

Used by tests/test_faults.py (short) and bench/faults.py (long, with Postgres stopped).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import asyncpg

from ivr.cli.simulator import FakeCall, FakeTwilio, Twiml

RECORDED = "Your choice has been recorded"
# Said by every ending that records nothing: a failure, a lost call, too many wrong keys.
NOTHING_RECORDED = "nothing has been changed"


@dataclass
class Tally:
    calls: int = 0
    told_recorded: set[str] = field(default_factory=set)
    told_not_recorded: set[str] = field(default_factory=set)
    untold: set[str] = field(default_factory=set)  # the request itself failed (connection refused…)
    deliveries: int = 0
    http_5xx: int = 0

    def invariants(self, decided: dict[str, int], verify_intact: bool) -> dict[str, object]:
        missing = self.told_recorded - set(decided)
        return {
            "calls": self.calls,
            "webhook deliveries": self.deliveries,
            "told recorded": len(self.told_recorded),
            "decisions in the ledger": sum(decided.values()),
            "confirmed but missing": len(missing),
            "duplicate decisions": sum(n - 1 for n in decided.values() if n > 1),
            "told nothing was recorded": len(self.told_not_recorded),
            "decided although told nothing was recorded": len(self.told_not_recorded & set(decided)),
            "no answer at all (connection failed)": len(self.untold),
            "HTTP 5xx to Twilio": self.http_5xx,
            "ivr verify intact": verify_intact,
        }


async def deliver(twilio: FakeTwilio, call: FakeCall, tally: Tally, rng: random.Random, pending: list) -> Twiml:
    """The call's last webhook again, as Twilio might: 0-2 extra copies, now or later."""
    sent = call.last
    assert sent is not None
    copies = rng.choice([0, 1, 1, 2])
    concurrent = [twilio.post(sent.url, sent.params, token=sent.token) for _ in range(copies // 2)]
    later = copies - len(concurrent)
    answers = await asyncio.gather(*concurrent, return_exceptions=True)
    for _ in range(later):  # delivered again after the caller has moved on: out of order
        pending.append(twilio.post(sent.url, sent.params, token=sent.token))
    tally.deliveries += 1 + copies
    for answer in answers:
        if isinstance(answer, Twiml) and answer.status >= 500:
            tally.http_5xx += 1
    assert call.current is not None
    return call.current


async def one_call(twilio: FakeTwilio, tally: Tally, rng: random.Random) -> None:
    call = twilio.call()
    tally.calls += 1
    pending: list[Awaitable[Twiml]] = []
    try:
        answer = await call.dial()
        await deliver(twilio, call, tally, rng, pending)
        for keys in ("2", "2", "1"):
            if answer.status >= 500:
                tally.http_5xx += 1
            if answer.gather is None:
                break
            answer = await call.press(keys)
            await deliver(twilio, call, tally, rng, pending)
        if answer.status >= 500:
            tally.http_5xx += 1
        if RECORDED in answer.heard:
            tally.told_recorded.add(call.call_sid)
        elif NOTHING_RECORDED in answer.heard.lower():
            tally.told_not_recorded.add(call.call_sid)
        else:
            tally.untold.add(call.call_sid)
        late = await asyncio.gather(*pending, return_exceptions=True)
        tally.http_5xx += sum(1 for a in late if isinstance(a, Twiml) and a.status >= 500)
        await call.hang_up()
    except (aiohttp.ClientError, OSError):
        tally.untold.add(call.call_sid)


async def campaign(
    base_url: str,
    auth_token: str,
    *,
    calls: int,
    concurrency: int,
    fault: Callable[[], Awaitable[None]] | None = None,
    fault_after: int = 0,
    seed: int = 7,
    twilio: Callable[[aiohttp.ClientSession], FakeTwilio] | None = None,
    fresh_connections: bool = False,
    connections: int = 100,
) -> Tally:
    """``twilio`` makes the sender (default: straight to ``base_url``); ``fresh_connections``
    opens a connection per request, so a dropped connection is always a dropped request;
    ``connections`` caps the open connections (0: none, as Twilio, so no request waits here)."""
    tally = Tally()
    rng = random.Random(seed)
    gate = asyncio.Semaphore(concurrency)
    faults: list[asyncio.Task[None]] = []
    connector = aiohttp.TCPConnector(limit=connections, force_close=fresh_connections)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20), connector=connector) as http:
        sender = twilio(http) if twilio is not None else FakeTwilio(http, base_url, auth_token)

        async def limited(n: int) -> None:
            async with gate:
                if fault is not None and n == fault_after:
                    faults.append(asyncio.get_running_loop().create_task(fault()))
                await one_call(sender, tally, rng)

        await asyncio.gather(*(limited(n) for n in range(calls)))
        await asyncio.gather(*faults)  # a fault that outlasts the calls still ends before the reconciling
    return tally


async def decisions_by_call(conn: asyncpg.Connection, call_sids: set[str]) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT call_sid, count(*) AS n FROM consent_events WHERE call_sid = ANY($1::text[]) GROUP BY call_sid",
        list(call_sids),
    )
    return {r["call_sid"]: r["n"] for r in rows}
