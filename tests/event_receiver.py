"""A subscriber's endpoint for the tests: a real aiohttp server on loopback that keeps what it gets."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import unused_port

# Settings that make deliveries quick to see and retries quick to exhaust (tests only).
QUICK_DELIVERY = {
    "EVENT_ALLOW_PRIVATE_TARGETS": "true",
    "EVENT_POLL_INTERVAL_S": "0.05",
    "EVENT_RETRY_SCHEDULE_S": "0.2,0.2,0.2",
    "EVENT_DELIVERY_TIMEOUT_S": "2",
    "EVENT_LEASE_S": "3",
}


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def envelope(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers each request with the next status in ``answers`` (then 200), after ``delay_s``."""

    url: str
    answers: list[int | tuple[int, dict[str, str]]] = field(default_factory=list)
    delay_s: float = 0.0
    hold: asyncio.Event | None = None  # set: requests wait for it (a receiver that hangs)
    received: list[Received] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=dict)
    overlaps: list[str] = field(default_factory=list)  # webhook-ids sent twice at once

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        msg_id = request.headers.get("webhook-id", "")
        self.received.append(Received(dict(request.headers), body))
        if self.in_flight.get(msg_id):
            self.overlaps.append(msg_id)
        self.in_flight[msg_id] = self.in_flight.get(msg_id, 0) + 1
        try:
            if self.hold is not None:
                await self.hold.wait()
            await asyncio.sleep(self.delay_s)
        finally:
            self.in_flight[msg_id] -= 1
        answer = self.answers.pop(0) if self.answers else 200
        status, headers = answer if isinstance(answer, tuple) else (answer, {})
        return web.Response(status=status, headers=headers, text="ok")

    def of_type(self, event_type: str, subject: str | None = None) -> list[Received]:
        return [
            r
            for r in self.received
            if r.envelope["type"] == event_type and (subject is None or r.envelope["data"]["subject"] == subject)
        ]

    async def wait_for(self, count: int, event_type: str, subject: str | None = None, within_s: float = 10) -> None:
        for _ in range(int(within_s / 0.02)):
            if len(self.of_type(event_type, subject)) >= count:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"{count} {event_type} never arrived: {[r.envelope['type'] for r in self.received]}")


@contextlib.asynccontextmanager
async def event_receiver(path: str = "/hooks/consent") -> AsyncIterator[Receiver]:
    port = unused_port()
    receiver = Receiver(f"http://127.0.0.1:{port}{path}")
    app = web.Application()
    app.router.add_post(path, receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield receiver
    finally:
        if receiver.hold is not None:
            receiver.hold.set()
        await runner.cleanup()
