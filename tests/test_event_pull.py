"""Pull, for systems that prefer it (issue 17, item 6): a keyset feed, its SSE stream, a suppression diff."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp.test_utils import unused_port

from ivr.api.events import StreamSlots
from ivr.transfer_feed import StreamLimitReached
from tests.conftest import AUTH_TOKEN, Service, Storage, running_service
from tests.event_receiver import QUICK_DELIVERY
from tests.fake_twilio import FakeTwilio, new_caller
from tests.helpers import api, token_for
from tests.test_event_deliveries import revoke_by_phone
from tests.test_event_receipts import subscription_with_token


@pytest.fixture
async def quick(storage: Storage) -> AsyncIterator[Service]:
    async with running_service(storage, unused_port(), **QUICK_DELIVERY) as running:
        yield running


async def _head(service: Service) -> int:
    async with service.pool.acquire() as conn:
        return int(await conn.fetchval("SELECT coalesce(max(seq), 0) FROM events"))


async def test_the_feed_resumes_from_its_cursor_and_filters_types(quick, http) -> None:
    staff = await token_for(quick, "staff", "puller")
    start = await _head(quick)
    caller = new_caller()
    await revoke_by_phone(quick.base_url, http, caller, key="2")  # telemarketing
    await revoke_by_phone(quick.base_url, http, caller, key="3")  # e-mail
    feed = f"{quick.base_url}/api/events?subject={quote(caller)}&types=consent.revoked"

    status, first = await api(http, "GET", f"{feed}&after={start}&limit=1", staff)
    assert status == 200 and len(first["events"]) == 1
    assert first["next"] == int(first["events"][0]["id"].removeprefix("evt_"))
    _, rest = await api(http, "GET", f"{feed}&after={first['next']}", staff)
    assert [e["data"]["purpose"] for e in first["events"] + rest["events"]] == ["telemarketing", "email"]
    _, done = await api(http, "GET", f"{feed}&after={rest['next']}", staff)
    assert done["events"] == [] and done["next"] == rest["next"]  # nothing new: ask again with the same cursor
    _, none = await api(
        http, "GET", f"{quick.base_url}/api/events?subject={quote(caller)}&types=request.opened&after={start}", staff
    )
    assert none["events"] == []
    assert (await api(http, "GET", f"{quick.base_url}/api/events?types=consent.maybe", staff))[0] == 400

    # An integration token pulls only its subscription's types, and only from its start.
    sub, token = await subscription_with_token(quick, "http://127.0.0.1:9/x", ["request.opened"], "puller-sys")
    try:
        _, mine = await api(http, "GET", f"{quick.base_url}/api/events?after=0&types=consent.revoked", token)
        assert mine["events"] == []
        later = new_caller()
        await revoke_by_phone(quick.base_url, http, later)
        _, mine = await api(http, "GET", f"{quick.base_url}/api/events?after=0", token)
        assert all(e["type"] == "request.opened" for e in mine["events"])
    finally:
        async with quick.pool.acquire() as conn:
            await conn.fetchval("SELECT remove_subscription($1)", sub)


async def _sse_events(resp: aiohttp.ClientResponse, count: int) -> list[dict[str, str]]:
    """The first ``count`` events of a stream (comments skipped)."""
    got: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    while len(got) < count:
        line = (await resp.content.readline()).decode().rstrip("\n")
        if not line:
            if fields:
                got.append(fields)
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value
    return got


async def test_the_stream_resumes_from_last_event_id(quick, http) -> None:
    staff = await token_for(quick, "staff", "streamer")
    start = await _head(quick)
    caller = new_caller()
    await revoke_by_phone(quick.base_url, http, caller, key="2")
    await revoke_by_phone(quick.base_url, http, caller, key="3")
    url = f"{quick.base_url}/api/events/stream?types=consent.revoked"
    auth = {"Authorization": f"Bearer {staff}"}
    async with http.get(f"{url}&after={start}", headers=auth) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
        [first] = await _sse_events(resp, 1)
    assert first["event"] == "consent.revoked" and json.loads(first["data"])["id"] == first["id"]
    assert json.loads(first["data"])["data"]["purpose"] == "telemarketing"
    # Reconnecting with the last id seen: the next one, not the first again (Last-Event-ID wins over after).
    async with http.get(f"{url}&after=0", headers=auth | {"Last-Event-ID": first["id"]}) as resp:
        [second] = await _sse_events(resp, 1)
        assert json.loads(second["data"])["data"]["purpose"] == "email"
        # Then live: a revocation made now arrives on the open stream.
        await revoke_by_phone(quick.base_url, http, new_caller())
        [live] = await _sse_events(resp, 1)
        assert int(live["id"].removeprefix("evt_")) > int(second["id"].removeprefix("evt_"))
    async with http.get(url, headers=auth | {"Last-Event-ID": "nonsense"}) as resp:
        assert resp.status == 400


async def test_suppression_changed_since_gives_only_what_changed(quick, http) -> None:
    staff = await token_for(quick, "staff", "differ")
    twilio = FakeTwilio(http, quick.base_url, AUTH_TOKEN)
    before = datetime.now(UTC)
    lifted = await revoke_by_phone(quick.base_url, http)
    between = datetime.now(UTC)
    revoked = await revoke_by_phone(quick.base_url, http)
    regranted = twilio.call(caller=lifted)
    await regranted.dial()
    await regranted.keys("2", "1", "1")  # telemarketing, allow, confirm
    url = f"{quick.base_url}/api/suppression?purpose=telemarketing&changed_since="

    _, diff = await api(http, "GET", url + quote(between.isoformat()), staff)
    suppressed = [n["phone"] for n in diff["numbers"]]
    assert revoked in suppressed and lifted not in suppressed
    assert lifted in diff["lifted"]  # suppressed then, allowed now: the dialer may call it again
    _, since_start = await api(http, "GET", url + quote(before.isoformat()), staff)
    assert revoked in [n["phone"] for n in since_start["numbers"]]
    assert lifted not in since_start["lifted"] + [n["phone"] for n in since_start["numbers"]]  # no change overall
    _, nothing = await api(http, "GET", url + quote(diff["as_of"]), staff)
    assert revoked not in [n["phone"] for n in nothing["numbers"]]
    auth = {"Authorization": f"Bearer {staff}"}
    async with http.get(url + quote(between.isoformat()) + "&format=csv", headers=auth) as resp:
        rows = {r["phone"]: r["change"] for r in csv.DictReader(io.StringIO(await resp.text()))}
    assert (rows[revoked], rows[lifted]) == ("suppressed", "lifted")
    assert (await api(http, "GET", url + "yesterday", staff))[0] == 400


def test_a_process_holds_at_most_its_streams_and_frees_a_slot_when_one_ends() -> None:
    slots = StreamSlots(1)
    with slots.slot():
        with pytest.raises(StreamLimitReached):  # answered 429 with Retry-After by the error middleware
            with slots.slot():
                pass
    with slots.slot():
        assert slots.open == 1
    assert slots.open == 0
