"""Agents move a live caller into a flow and get them back; the result reaches them live."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import timedelta

import aiohttp
import pytest
from aiohttp.test_utils import unused_port

from storage.consent_state import Status, consent_state
from storage.tokens import revoke_token
from tests.conftest import AUTH_TOKEN, Storage
from tests.helpers import a_caller_on_a_call, api, spawn_ivr, token_for, twilio_follows, wait_ready


async def test_a_transfer_round_trip_records_the_agent_and_returns_the_caller(desk, phone, rest, http, db) -> None:
    token = await token_for(desk, "agent", "alice")
    call = await a_caller_on_a_call(phone)
    status, created = await api(
        http,
        "POST",
        f"{desk.base_url}/api/transfers",
        token,
        {"call_sid": call.call_sid, "flow": "cpni-one-time", "return_to": "client:alice"},
    )
    assert status == 201, created
    [redirect] = rest.redirects
    assert (redirect.call_sid, redirect.method) == (call.call_sid, "POST")
    assert redirect.url == f"{desk.base_url}/twilio/voice?transfer={created['transfer_id']}"

    notice = await twilio_follows(phone, call, redirect.url)
    assert notice.says[0].startswith("Your agent would like to use your account information")
    back = await call.keys("1", "1")
    assert back.says == ["Thank you. Your answer has been recorded.", "Connecting you back to your agent."]
    assert back.root.find("Dial").find("Client").text == "alice"
    during = await consent_state(db, call.caller, "cpni", as_of=await db.fetchval("SELECT now()"))
    done = await call.connection_ends("completed")
    assert done.says == ["Goodbye."]

    event = await db.fetchrow("SELECT * FROM consent_events WHERE call_sid = $1", call.call_sid)
    assert (event["channel"], event["agent"], event["scope"], event["action"]) == (
        "agent_assisted",
        "alice",
        "call",
        "grant",
    )
    agents = await db.fetch("SELECT DISTINCT agent FROM keypresses WHERE call_sid = $1 AND seq > 0", call.call_sid)
    assert [r["agent"] for r in agents] == ["alice"]
    assert during.status is Status.GRANTED and during.scope == "call"
    status, shown = await api(http, "GET", f"{desk.base_url}/api/transfers/{created['transfer_id']}", token)
    assert status == 200 and shown["status"] == "returned"
    assert [e["kind"] for e in shown["events"]] == ["requested", "started", "decision", "returning", "returned"]
    assert shown["decisions"][0]["purpose"] == "cpni"


async def test_a_one_time_approval_lapses_when_the_call_ends(desk, phone, rest, http, db) -> None:
    token = await token_for(desk, "agent", "bo")
    call = await a_caller_on_a_call(phone)
    _, created = await api(
        http,
        "POST",
        f"{desk.base_url}/api/transfers",
        token,
        {"call_sid": call.call_sid, "flow": "cpni-one-time", "return_to": "client:bo"},
    )
    await twilio_follows(phone, call, rest.redirects[-1].url)
    await call.keys("1", "1")
    decided = await db.fetchval("SELECT recorded_at FROM consent_events WHERE call_sid = $1", call.call_sid)
    await call.connection_ends("completed")
    await call.hang_up()
    ended = await db.fetchval("SELECT received_at FROM call_endings WHERE call_sid = $1", call.call_sid)

    assert (await consent_state(db, call.caller, "cpni", as_of=decided)).status is Status.GRANTED
    after = await consent_state(db, call.caller, "cpni", as_of=ended + timedelta(seconds=1))
    assert after.status is not Status.GRANTED


async def test_a_busy_agent_is_told_to_the_caller_and_reported(desk, phone, rest, http) -> None:
    token = await token_for(desk, "agent", "cy")
    call = await a_caller_on_a_call(phone)
    _, created = await api(
        http,
        "POST",
        f"{desk.base_url}/api/transfers",
        token,
        {"call_sid": call.call_sid, "flow": "cpni-one-time", "return_to": "queue:support"},
    )
    await twilio_follows(phone, call, rest.redirects[-1].url)
    back = await call.keys("2", "1")
    assert back.root.find("Enqueue").text == "support"
    failed = await call.connection_ends("queue-full")

    assert failed.says[0].startswith("We could not reach your agent. Your answer is recorded.")
    _, shown = await api(http, "GET", f"{desk.base_url}/api/transfers/{created['transfer_id']}", token)
    assert shown["status"] == "return_failed"


async def test_hanging_up_mid_flow_abandons_the_transfer(desk, phone, rest, http) -> None:
    token = await token_for(desk, "agent", "di")
    call = await a_caller_on_a_call(phone)
    _, created = await api(
        http,
        "POST",
        f"{desk.base_url}/api/transfers",
        token,
        {"call_sid": call.call_sid, "flow": "cpni-one-time", "return_to": "client:di"},
    )
    await twilio_follows(phone, call, rest.redirects[-1].url)
    await call.hang_up()

    _, shown = await api(http, "GET", f"{desk.base_url}/api/transfers/{created['transfer_id']}", token)
    assert shown["status"] == "abandoned"
    assert shown["events"][-1]["detail"] == {"at_step": "choice"}


async def test_a_second_transfer_of_a_call_under_transfer_is_refused(desk, phone, rest, http) -> None:
    token = await token_for(desk, "agent", "ed")
    call = await a_caller_on_a_call(phone)
    body = {"call_sid": call.call_sid, "flow": "cpni-one-time", "return_to": "client:ed"}
    first, second = await asyncio.gather(
        api(http, "POST", f"{desk.base_url}/api/transfers", token, body),
        api(http, "POST", f"{desk.base_url}/api/transfers", token, body),
    )

    assert sorted([first[0], second[0]]) == [201, 409]
    assert "already has a transfer under way" in (first if first[0] == 409 else second)[1]["error"]
    assert len(rest.redirects) == 1


@pytest.mark.parametrize(
    ("script", "status", "message"),
    [
        ([404], 404, "Twilio knows no call"),
        ([400], 409, "is not in progress"),
        ([401], 502, "Twilio refused our credentials"),
        ([500], 502, "Twilio failed (HTTP 500)"),
        ([429, 429, 429], 503, "rate-limiting"),
        ([429, 429], 201, None),
    ],
    ids=["unknown-call", "call-ended", "bad-credentials", "twilio-5xx", "rate-limited", "429-then-ok"],
)
async def test_twilio_errors_become_clear_api_errors(desk, rest, http, script, status, message) -> None:
    token = await token_for(desk, "agent", "fay")
    call_sid = "CA" + os.urandom(16).hex()
    rest.scripts[call_sid] = list(script)
    got, body = await api(
        http,
        "POST",
        f"{desk.base_url}/api/transfers",
        token,
        {"call_sid": call_sid, "flow": "cpni-one-time", "return_to": "client:fay"},
    )

    assert got == status, body
    if message:
        assert message in body["error"]
        # the failed transfer is over: another may be tried
        rest.scripts[call_sid] = []
        again, _ = await api(
            http,
            "POST",
            f"{desk.base_url}/api/transfers",
            token,
            {"call_sid": call_sid, "flow": "cpni-one-time", "return_to": "client:fay"},
        )
        assert again == 201


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"call_sid": "nope", "flow": "cpni-one-time", "return_to": "client:a"}, "call_sid"),
        ({"call_sid": "CA" + "1" * 32, "flow": "no-such", "return_to": "client:a"}, "no flow named"),
        ({"call_sid": "CA" + "1" * 32, "flow": "cpni-one-time", "return_to": "elsewhere"}, "return_to"),
    ],
)
async def test_bad_transfer_requests_get_422(desk, http, body, message) -> None:
    token = await token_for(desk, "agent", "gus")
    status, answer = await api(http, "POST", f"{desk.base_url}/api/transfers", token, body)

    assert status == 422 and message in answer["error"]


async def test_only_live_agent_tokens_may_transfer(desk, http) -> None:
    url = f"{desk.base_url}/api/transfers"
    body = {"call_sid": "CA" + "2" * 32, "flow": "cpni-one-time", "return_to": "client:a"}
    staff = await token_for(desk, "staff", "hal")
    agent = await token_for(desk, "agent", "ivy")
    async with desk.pool.acquire() as conn:
        token_id = await conn.fetchval("SELECT max(id) FROM api_tokens")
        await revoke_token(conn, token_id)

    assert (await api(http, "POST", url, None, body))[0] == 401
    assert (await api(http, "POST", url, "ivr_not-a-token", body))[0] == 401
    assert (await api(http, "POST", url, staff, body))[0] == 403
    assert (await api(http, "POST", url, agent, body))[0] == 401  # revoked: refused at once


async def test_the_agent_page_is_served(desk, http) -> None:
    async with http.get(f"{desk.base_url}/agent") as resp:
        page = await resp.text()
    async with http.get(f"{desk.base_url}/assets/agent.js") as script:  # the page's own script
        code = await script.text()
    assert resp.status == 200 and resp.content_type == "text/html"
    assert 'id="call_sid"' in page and '<script src="/assets/agent.js"></script>' in page
    assert script.status == 200 and "/api/transfers" in code


async def test_live_events_reach_an_agent_connected_to_another_process(
    storage: Storage, desk, phone, rest, http, tmp_path
) -> None:
    """The webhooks go to one service; the agent's event stream is served by a separate `ivr serve`."""
    token = await token_for(desk, "agent", "jo")
    port = unused_port()
    env = os.environ | {
        "DATABASE_URL": storage.database_url,
        "REDIS_URL": storage.redis_url,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "TWILIO_API_BASE_URL": rest.url,
        "IVR_DATA_DIR": str(tmp_path),
        "LOG_LEVEL": "WARNING",
    }
    other = await spawn_ivr("serve", "--port", str(port), env=env, quiet=True)
    try:
        other_url = f"http://127.0.0.1:{port}"
        await wait_ready(http, other_url, other)
        call = await a_caller_on_a_call(phone)
        _, created = await api(
            http,
            "POST",
            f"{desk.base_url}/api/transfers",
            token,
            {"call_sid": call.call_sid, "flow": "cpni-one-time", "return_to": "client:jo"},
        )
        events: list[dict] = []
        stream = asyncio.create_task(
            _read_events(http, f"{other_url}/api/transfers/{created['transfer_id']}/events", token, events)
        )
        await asyncio.sleep(0.3)  # the agent is watching before the caller acts
        await twilio_follows(phone, call, rest.redirects[-1].url)
        await call.keys("1", "1")
        await call.connection_ends("completed")
        await asyncio.wait_for(stream, 10)
    finally:
        other.terminate()
        await other.wait()

    assert [e["kind"] for e in events] == ["requested", "started", "decision", "returning", "returned"]
    assert events[2]["detail"]["purpose"] == "cpni" and events[2]["detail"]["scope"] == "call"


async def _read_events(http: aiohttp.ClientSession, url: str, token: str, events: list[dict]) -> None:
    async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 200 and resp.content_type == "text/event-stream"
        async for line in resp.content:
            if line.startswith(b"data: "):
                events.append(json.loads(line[6:]))
