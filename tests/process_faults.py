"""Faults of the `ivr serve` processes themselves, under a campaign of concurrent calls.

Two scenarios, run short by tests/test_process_faults.py and long by bench/faults.py:

- one of two processes behind a load balancer is killed (SIGKILL) mid-run; requests
  that fail on the dead one are re-sent to the survivor with the same idempotency token;
- the service is sent SIGTERM under load: every request already accepted must get its
  whole answer, the process must exit within its bound, the ledger must verify right
  after the exit, and the calls carry on once it is started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp.test_utils import unused_port
from redis.asyncio import Redis

from ivr.cli.simulator import FakeTwilio, Twiml
from storage.keys import session_key
from storage.postgres import connect
from storage.sessions import decode_session
from storage.verify import verify_ledger
from tests.campaign import Tally, campaign, decisions_by_call
from tests.helpers import spawn_ivr, wait_ready

# Twilio's URL for the service: the load balancer's, which no process listens on itself.
PUBLIC_URL = "http://ivr-lb.test"
# A lone process drains for up to Twilio's 15 s, then closes its pools; a supervisor
# gives its workers 30 s. Past these, a stop is not "bounded" any more.
PROCESS_STOP_BOUND_S = 20.0
SUPERVISOR_STOP_BOUND_S = 35.0
# How long the load balancer keeps re-sending a request no process can take.
BALANCER_PATIENCE_S = 15.0  # Twilio gives up on a webhook after this
RESTART_PATIENCE_S = 60.0  # a rolling restart: requests are held until the process is back


@dataclass(frozen=True)
class Store:
    """Where every `ivr serve` of a scenario keeps its state (one database, one Redis)."""

    database_url: str
    redis_url: str
    auth_token: str
    data_dir: Path

    def env(self, environ: dict[str, str]) -> dict[str, str]:
        return environ | {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "TWILIO_AUTH_TOKEN": self.auth_token,
            "PUBLIC_BASE_URL": PUBLIC_URL,
            "LOG_LEVEL": "ERROR",
            "IVR_DATA_DIR": str(self.data_dir),
        }


@dataclass(frozen=True)
class Attempt:
    call_sid: str
    token: str
    started: float
    ended: float
    outcome: str  # "answered", "refused" (nothing listened) or "dropped" (connection lost after sending)


class Balancer(FakeTwilio):
    """Twilio behind a load balancer: every request signed for the public URL, sent to the
    backends in turn; one whose connection fails is re-sent, with the same idempotency
    token, to the next backend (as a load balancer, or Twilio's own retry, does) until
    one answers or ``patience_s`` has passed since the first try."""

    def __init__(self, http: aiohttp.ClientSession, auth_token: str, backends: list[str], patience_s: float) -> None:
        super().__init__(http, PUBLIC_URL, auth_token)
        self.backends = [b.rstrip("/") for b in backends]
        self.patience_s = patience_s
        self.attempts: list[Attempt] = []
        self.slowest_s = 0.0
        self._turn = itertools.count()

    async def post(
        self,
        url: str,
        params: dict[str, str],
        *,
        token: str | None = None,
        signature: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Twiml:
        token = token or str(uuid.uuid4())
        signature = self.sign(url, params) if signature is None else signature
        path = url.removeprefix(self.base_url)
        first = time.monotonic()
        for tries in itertools.count():
            backend = self.backends[next(self._turn) % len(self.backends)]
            started = time.monotonic()
            try:
                answer = await super().post(backend + path, params, token=token, signature=signature, headers=headers)
            except aiohttp.ClientConnectorError:
                self._note(params, token, started, "refused")
                if time.monotonic() - first > self.patience_s:
                    raise
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                self._note(params, token, started, "dropped")
                if time.monotonic() - first > self.patience_s:
                    raise
            else:
                self._note(params, token, started, "answered")
                self.slowest_s = max(self.slowest_s, time.monotonic() - first)
                return answer
            # The next backend at once; a second round (none of them took it) after a pause.
            if (tries + 1) % len(self.backends) == 0:
                await asyncio.sleep(min(0.1 * 2 ** (tries // len(self.backends)), 1.0))
        raise AssertionError("unreachable")

    def _note(self, params: dict[str, str], token: str, started: float, outcome: str) -> None:
        self.attempts.append(Attempt(params.get("CallSid", ""), token, started, time.monotonic(), outcome))

    def count(self, outcome: str, during: tuple[float, float] | None = None) -> int:
        return len(self.of(outcome, during))

    def of(self, outcome: str, during: tuple[float, float] | None = None) -> list[Attempt]:
        """Attempts with ``outcome``; with ``during``, only those sent before its end and ended after its start."""
        return [
            a
            for a in self.attempts
            if a.outcome == outcome and (during is None or (a.started < during[1] and a.ended > during[0]))
        ]


async def reconcile(database_url: str, tally: Tally) -> dict[str, object]:
    conn = await connect(database_url)
    try:
        everyone = tally.told_recorded | tally.told_not_recorded | tally.untold
        decided = await decisions_by_call(conn, everyone)
        intact = (await verify_ledger(conn)).intact
    finally:
        await conn.close()
    return tally.invariants(decided, intact)


async def ledger_intact(database_url: str) -> bool:
    conn = await connect(database_url)
    try:
        return (await verify_ledger(conn)).intact
    finally:
        await conn.close()


async def answered_by_the_server(redis_url: str, attempts: list[Attempt]) -> int:
    """How many of ``attempts`` the service answered: a dropped attempt that moved its call is an
    answer lost on the wire. The session names the webhook that moved the call last; no later
    one can have followed a webhook whose answer never got through."""
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        keys = [session_key(a.call_sid) for a in attempts]
        sessions = [decode_session(raw or "") for raw in (await redis.mget(keys) if keys else [])]
        return sum(1 for a, s in zip(attempts, sessions, strict=True) if s is not None and s.token == a.token)
    finally:
        await redis.aclose()


async def well_under_way(balancers: list[Balancer], calls: int) -> None:
    """Until about a third of the campaign's webhooks are answered: most calls are then mid-call."""
    while not balancers or balancers[0].count("answered") < 2 * calls:
        await asyncio.sleep(0.01)


async def start_serving(store: Store, environ: dict[str, str], port: int, *extra: str) -> asyncio.subprocess.Process:
    proc = await spawn_ivr("serve", "--port", str(port), *extra, env=store.env(environ), quiet=True)
    async with aiohttp.ClientSession() as http:
        await wait_ready(http, f"http://127.0.0.1:{port}", proc)
    return proc


async def stop_all(procs: list[asyncio.subprocess.Process]) -> None:
    for proc in procs:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            await asyncio.wait_for(proc.wait(), SUPERVISOR_STOP_BOUND_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def one_of_two_killed(
    store: Store, environ: dict[str, str], *, calls: int, concurrency: int, seed: int = 11
) -> dict[str, object]:
    """Two processes, requests spread over both; one SIGKILLed a quarter of the way in."""
    ports = [unused_port(), unused_port()]
    procs = [await start_serving(store, environ, port) for port in ports]
    backends = [f"http://127.0.0.1:{port}" for port in ports]
    balancers: list[Balancer] = []
    killed: list[float] = []

    def balancer(http: aiohttp.ClientSession) -> Balancer:
        balancers.append(Balancer(http, store.auth_token, backends, BALANCER_PATIENCE_S))
        return balancers[-1]

    async def kill_one() -> None:
        await well_under_way(balancers, calls)
        killed.append(time.monotonic())
        procs[1].kill()
        await procs[1].wait()

    try:
        tally = await campaign(
            PUBLIC_URL,
            store.auth_token,
            calls=calls,
            concurrency=concurrency,
            fault=kill_one,
            fault_after=calls // 4,
            seed=seed,
            twilio=balancer,
            fresh_connections=True,
            connections=0,
        )
        survivor_alive = procs[0].returncode is None
    finally:
        await stop_all(procs)
    lb = balancers[0]
    figures = await reconcile(store.database_url, tally)
    lost, refused = lb.count("dropped"), lb.count("refused")
    return figures | {
        "killed process: connections lost after sending": lost,
        "killed process: connections refused": refused,
        "requests re-sent to the survivor": lost + refused,
        "survivor still serving at the end": survivor_alive,
        "slowest answer to Twilio (s)": round(lb.slowest_s, 2),
    }


# The ledger held just before and after the signal: short of the service's statement
# timeout, so the webhooks caught behind it are answered "recorded", not timed out.
HOLD_BEFORE_SIGTERM_S = 0.3
HOLD_AFTER_SIGTERM_S = 1.0


@contextlib.asynccontextmanager
async def ledger_held(database_url: str):
    conn = await connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE ledger IN EXCLUSIVE MODE")
            yield
    finally:
        await conn.close()


async def drained_on_sigterm(
    store: Store, environ: dict[str, str], *, calls: int, concurrency: int, workers: int = 1, seed: int = 13
) -> dict[str, object]:
    """SIGTERM under load, then the service started again; the calls carry on throughout."""
    port = unused_port()
    extra = ("--workers", str(workers)) if workers > 1 else ()
    bound = SUPERVISOR_STOP_BOUND_S if workers > 1 else PROCESS_STOP_BOUND_S
    procs = [await start_serving(store, environ, port, *extra)]
    balancers: list[Balancer] = []
    stop: dict[str, object] = {}

    def balancer(http: aiohttp.ClientSession) -> Balancer:
        balancers.append(Balancer(http, store.auth_token, [f"http://127.0.0.1:{port}"], RESTART_PATIENCE_S))
        return balancers[-1]

    async def sigterm_then_restart() -> None:
        await well_under_way(balancers, calls)
        async with ledger_held(store.database_url):
            # Webhooks storing evidence now wait behind the lock: the signal finds them in
            # flight however fast the service answers, and the drain has to wait for them.
            await asyncio.sleep(HOLD_BEFORE_SIGTERM_S)
            stop["at"] = time.monotonic()
            procs[0].send_signal(signal.SIGTERM)
            await asyncio.sleep(HOLD_AFTER_SIGTERM_S)
        stop["exit code"] = await asyncio.wait_for(procs[0].wait(), bound)
        stop["exited"] = time.monotonic()
        # Nothing runs now: whatever the stop left in the ledger is all there is, and an
        # answer kept under a dropped request's token was given by the stopped process.
        stop["intact"] = await ledger_intact(store.database_url)
        dropped = balancers[0].of("dropped", (float(stop["at"]), float(stop["at"])))
        # A copy of the same webhook (same token) answered in full explains a kept answer.
        delivered = {a.token for a in balancers[0].of("answered")}
        unexplained = [a for a in dropped if a.token not in delivered]
        stop["dropped"], stop["lost"] = len(dropped), await answered_by_the_server(store.redis_url, unexplained)
        procs.append(await start_serving(store, environ, port, *extra))
        stop["back"] = time.monotonic()

    try:
        tally = await campaign(
            PUBLIC_URL,
            store.auth_token,
            calls=calls,
            concurrency=concurrency,
            fault=sigterm_then_restart,
            fault_after=calls // 4,
            seed=seed,
            twilio=balancer,
            fresh_connections=True,
            connections=0,
        )
    finally:
        await stop_all(procs)
    lb = balancers[0]
    figures = await reconcile(store.database_url, tally)
    sigterm, exited = float(stop["at"]), float(stop["exited"])  # type: ignore[arg-type]
    in_flight = (sigterm, sigterm)  # sent before the signal, not answered by then
    return figures | {
        "in flight at SIGTERM, answered in full": lb.count("answered", in_flight),
        "sent before SIGTERM, connection dropped (re-sent)": stop["dropped"],
        "  of which the service had answered (answer lost)": stop["lost"],
        "refused while stopped (re-sent later)": lb.count("refused"),
        "exit code": stop["exit code"],
        "SIGTERM to exit (s)": round(exited - sigterm, 2),
        "stop bound (s)": bound,
        "ivr verify right after the exit": stop["intact"],
        "SIGTERM to serving again (s)": round(float(stop["back"]) - sigterm, 2),  # type: ignore[arg-type]
        "slowest answer to Twilio (s)": round(lb.slowest_s, 2),
    }
