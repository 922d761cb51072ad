"""Events to NATS JetStream (issue 17): the outbox published in order, one message per event
(``Nats-Msg-Id`` = the event's id, so JetStream drops repeats), however many processes run.

Run against a real NATS server at 127.0.0.1:4222 (this CI machine has one), skipped with
the reason otherwise; the settings tests need no server.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import nats
import nats.errors
import pytest
from aiohttp.test_utils import unused_port
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from ivr import appkeys
from ivr.settings import Settings
from storage.outbox import event_id
from tests.conftest import Service, Storage, running_service
from tests.test_event_deliveries import revoke_by_phone
from tests.test_settings import GOOD, problems

NATS_HOST, NATS_PORT = "127.0.0.1", 4222
NATS_URL = f"nats://{NATS_HOST}:{NATS_PORT}"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


needs_nats = pytest.mark.skipif(
    not _reachable(NATS_HOST, NATS_PORT), reason=f"no NATS server reachable at {NATS_HOST}:{NATS_PORT}"
)


def test_the_nats_settings_default_and_are_checked() -> None:
    settings = Settings.from_env(GOOD | {"EVENTS_NATS_URL": "nats://events:pw@nats.internal:4222"})
    assert (settings.events_nats_stream, settings.events_nats_subject_prefix) == ("CONSENT_EVENTS", "consent.events.")
    assert "pw" not in repr(settings)
    assert Settings.from_env(GOOD).events_nats_url is None
    [bad_url] = problems(GOOD | {"EVENTS_NATS_URL": "http://nats.internal"})
    assert bad_url.startswith("config error: EVENTS_NATS_URL: must be a NATS URL")
    [bad_prefix] = problems(GOOD | {"EVENTS_NATS_SUBJECT_PREFIX": "consent.>"})
    assert bad_prefix.startswith("config error: EVENTS_NATS_SUBJECT_PREFIX")
    [bad_stream] = problems(GOOD | {"EVENTS_NATS_STREAM": "a.b"})
    assert bad_stream.startswith("config error: EVENTS_NATS_STREAM")


def _stream_env(url: str = NATS_URL) -> dict[str, str]:
    """A stream and subjects of the test's own (streams may not share subjects), polled often."""
    tag = secrets.token_hex(4)
    return {
        "EVENTS_NATS_URL": url,
        "EVENTS_NATS_STREAM": f"TEST_{tag}",
        "EVENTS_NATS_SUBJECT_PREFIX": f"test.{tag}.",
        "EVENT_POLL_INTERVAL_S": "0.05",
    }


@pytest.fixture
async def js() -> AsyncIterator[tuple[Client, JetStreamContext]]:
    nc = await nats.connect(NATS_URL)
    try:
        yield nc, nc.jetstream()
    finally:
        await nc.close()


async def until(check: Callable[[], Awaitable[bool]], within_s: float = 15) -> None:
    for _ in range(int(within_s / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("never happened")


async def cursor(service: Service, stream: str) -> int:
    async with service.pool.acquire() as conn:
        return await conn.fetchval("SELECT after_seq FROM event_publishers WHERE name = $1", stream) or 0


async def published_up_to_now(service: Service, stream: str) -> int:
    """Wait for the publisher to reach the outbox's newest event; its seq."""
    async with service.pool.acquire() as conn:
        newest = await conn.fetchval("SELECT max(seq) FROM events")

    async def reached() -> bool:
        return await cursor(service, stream) >= newest

    await until(reached)
    return int(newest)


async def events_up_to(service: Service, seq: int) -> int:
    async with service.pool.acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM events WHERE seq <= $1", seq))


async def messages(js: JetStreamContext, stream: str, subject: str) -> list[Msg]:
    """Every message on ``subject``, read by an ephemeral pull consumer."""
    sub = await js.pull_subscribe(subject, stream=stream)
    got: list[Msg] = []
    try:
        while True:
            try:
                batch = await sub.fetch(100, timeout=0.5)
            except nats.errors.TimeoutError:
                return got
            for msg in batch:
                await msg.ack()
            got.extend(batch)
    finally:
        await sub.unsubscribe()


async def stream_messages(js: JetStreamContext, stream: str) -> int:
    return int((await js.stream_info(stream)).state.messages)


@needs_nats
async def test_a_revocation_by_phone_is_published_once_named_by_its_event(storage: Storage, http, js) -> None:
    _, jetstream = js
    env = _stream_env()
    stream, prefix = env["EVENTS_NATS_STREAM"], env["EVENTS_NATS_SUBJECT_PREFIX"]
    try:
        async with running_service(storage, unused_port(), **env) as service:
            caller = await revoke_by_phone(service.base_url, http)
            async with service.pool.acquire() as conn:
                seq = await conn.fetchval(
                    "SELECT max(seq) FROM events WHERE type = 'consent.revoked' AND ordering_key = $1", caller
                )
            await published_up_to_now(service, stream)

            mine = [
                m
                for m in await messages(jetstream, stream, f"{prefix}consent.revoked")
                if json.loads(m.data)["subject"] == caller
            ]
            assert len(mine) == 1
            [msg] = mine
            envelope = json.loads(msg.data)
            assert msg.subject == f"{prefix}consent.revoked"
            assert msg.headers is not None and msg.headers["Nats-Msg-Id"] == event_id(seq) == envelope["id"]
            assert (envelope["type"], envelope["specversion"], envelope["source"]) == (
                "consent.revoked",
                "1.0",
                service.base_url,
            )
            assert envelope["data"]["action"] == "revoke" and envelope["data"]["reaches"] == [caller]

            # Published again from the start (a cursor set back): JetStream keeps one of each.
            count = await stream_messages(jetstream, stream)
            assert count == await events_up_to(service, seq)
            async with service.pool.acquire() as conn:
                await conn.execute("UPDATE event_publishers SET after_seq = 0 WHERE name = $1", stream)
            await until(lambda: _is(service.app[appkeys.EVENT_PUBLISHER].duplicates >= count))
            await published_up_to_now(service, stream)
            assert await stream_messages(jetstream, stream) == count
    finally:
        # After the service stopped: a running publisher would make the stream again.
        await jetstream.delete_stream(stream)


async def _is(value: bool) -> bool:
    return value


@needs_nats
async def test_two_processes_on_one_database_publish_each_event_once(storage: Storage, http, js) -> None:
    _, jetstream = js
    env = _stream_env()
    stream = env["EVENTS_NATS_STREAM"]
    try:
        async with (
            running_service(storage, unused_port(), **env) as one,
            running_service(storage, unused_port(), **env) as two,
        ):
            for n in range(6):
                await revoke_by_phone((one if n % 2 else two).base_url, http)
            newest = await published_up_to_now(one, stream)
            count = await events_up_to(one, newest)
            publishers = [s.app[appkeys.EVENT_PUBLISHER] for s in (one, two)]
            assert sum(p.published for p in publishers) == count
            assert [p.duplicates for p in publishers] == [0, 0]
            assert await stream_messages(jetstream, stream) == count
    finally:
        await jetstream.delete_stream(stream)


@pytest.mark.skipif(shutil.which("nats-server") is None, reason="no nats-server binary to start and stop")
async def test_the_publisher_resumes_after_nats_restarts(storage: Storage, http, tmp_path: Path) -> None:
    port = unused_port()
    env = _stream_env(f"nats://127.0.0.1:{port}")
    stream = env["EVENTS_NATS_STREAM"]

    def start() -> subprocess.Popen[bytes]:
        server = subprocess.Popen(  # noqa: S603 - our own arguments
            ["nats-server", "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return server

    server = start()
    try:
        await until(lambda: _is(_reachable("127.0.0.1", port)))
        async with running_service(storage, unused_port(), **env) as service:
            await revoke_by_phone(service.base_url, http)
            await published_up_to_now(service, stream)
            server.terminate()
            server.wait(10)
            while_down = await revoke_by_phone(service.base_url, http)
            server = start()
            newest = await published_up_to_now(service, stream)
            nc = await nats.connect(env["EVENTS_NATS_URL"])
            try:
                js = nc.jetstream()
                assert await stream_messages(js, stream) == await events_up_to(service, newest)
                subjects = [json.loads(m.data)["subject"] for m in await messages(js, stream, ">")]
                assert subjects.count(while_down) == 1
            finally:
                await nc.close()
    finally:
        server.terminate()
        server.wait(10)
