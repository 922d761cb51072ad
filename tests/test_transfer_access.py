"""Agents cannot send a live call anywhere, nor read each other's transfers (issue 16, finding 3).

A transfer's ``return_to`` must be on TRANSFER_RETURN_DESTINATIONS (or be AGENT_TARGET);
anything else is 422, with no transfer recorded and no call moved. A transfer and its
event stream are seen by the token that started it and by admins; anyone else gets the
404 an unknown id gets.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import unused_port

from ivr.destinations import ReturnDestinations
from ivr.settings import ConfigError, Settings
from tests.conftest import Service, Storage, running_service
from tests.fake_twilio import new_call_sid
from tests.fake_twilio_rest import FakeTwilioRest
from tests.helpers import api, token_for

OUR_PBX = "queue:support,client:agent-*,sip:*@pbx.example.com,+1415555*"


def transfer_to(return_to: str) -> dict[str, str]:
    return {"call_sid": new_call_sid(), "flow": "cpni-one-time", "return_to": return_to}


@pytest.mark.parametrize(
    "return_to",
    [
        "+882123456789",  # an international network number: well formed, not ours
        "+14155550111",  # a plain number: the default list names none
        "sip:eavesdrop@evil.test",
        "sip:eavesdrop@evil.test;x=@pbx.example.com",
    ],
)
async def test_a_destination_off_the_default_list_is_refused_with_422(desk: Service, rest, http, db, return_to) -> None:
    token = await token_for(desk, "agent", "mallory")
    body = transfer_to(return_to)
    status, answer = await api(http, "POST", f"{desk.base_url}/api/transfers", token, body)

    assert status == 422
    assert answer["error"] == (
        f"return_to {return_to!r} is not an allowed return destination"
        " (TRANSFER_RETURN_DESTINATIONS allows: client:*, queue:*, queue:agents)"
    )
    assert rest.redirects == []
    assert await db.fetchval("SELECT count(*) FROM transfers WHERE call_sid = $1", body["call_sid"]) == 0


@pytest.fixture
async def our_pbx(storage: Storage, rest: FakeTwilioRest) -> AsyncIterator[Service]:
    async with running_service(
        storage, unused_port(), TWILIO_API_BASE_URL=rest.url, TRANSFER_RETURN_DESTINATIONS=OUR_PBX
    ) as running:
        yield running


async def test_only_the_destinations_listed_are_allowed(our_pbx: Service, rest, http) -> None:
    token = await token_for(our_pbx, "agent", "nan")
    allowed = [
        "queue:support",
        "queue:agents",  # AGENT_TARGET, always
        "client:agent-7",
        "sip:bob@pbx.example.com",
        "sip:bob@PBX.example.com;transport=tls",
        "+14155550111",
    ]
    refused = [
        "queue:billing",
        "client:alice",
        "sip:bob@pbx.example.com.evil.test",
        "sip:bob@pbx.example.com:5099",
        "sip:bob@pbx.example.com?X-Forward=evil",
        "+14165550111",
    ]
    url = f"{our_pbx.base_url}/api/transfers"
    answers = {target: (await api(http, "POST", url, token, transfer_to(target)))[0] for target in allowed + refused}

    assert answers == {target: 201 for target in allowed} | {target: 422 for target in refused}
    assert len(rest.redirects) == len(allowed)


async def test_a_transfer_is_seen_only_by_its_token_and_by_admins(desk: Service, http) -> None:
    owner, other, admin = (
        await token_for(desk, "agent", "olga"),
        await token_for(desk, "agent", "pete"),
        await token_for(desk, "admin", "root"),
    )
    _, created = await api(http, "POST", f"{desk.base_url}/api/transfers", owner, transfer_to("client:olga"))
    transfer = f"{desk.base_url}/api/transfers/{created['transfer_id']}"
    unknown = f"{desk.base_url}/api/transfers/{uuid.uuid4()}"

    async def stream_status(url: str, token: str) -> tuple[int, str]:
        async with http.get(f"{url}/events", headers={"Authorization": f"Bearer {token}"}) as resp:
            first = await resp.content.readline() if resp.status == 200 else await resp.read()
            return resp.status, first.decode()

    seen = {who: await api(http, "GET", transfer, token) for who, token in [("owner", owner), ("admin", admin)]}
    hidden = await api(http, "GET", transfer, other)
    streams = {who: await stream_status(transfer, token) for who, token in [("owner", owner), ("admin", admin)]}
    hidden_stream = await stream_status(transfer, other)

    assert seen["owner"][0] == seen["admin"][0] == 200 and seen["admin"][1]["agent"] == "olga"
    assert hidden == (404, {"error": "no such transfer"}) == await api(http, "GET", unknown, other)
    assert streams["owner"][0] == streams["admin"][0] == 200
    assert streams["owner"][1].startswith("id: ")
    assert hidden_stream == (404, '{"error": "no such transfer"}') == await stream_status(unknown, other)
    async with desk.pool.acquire() as conn:  # every look was noted, the refused ones too
        looks = await conn.fetch(
            "SELECT actor, action FROM access_log WHERE target = $1 ORDER BY id", created["transfer_id"]
        )
    assert [(r["actor"], r["action"]) for r in looks] == [
        ("olga", "transfer.read"),
        ("root", "transfer.read"),
        ("pete", "transfer.read"),
        ("olga", "transfer.events"),
        ("root", "transfer.events"),
        ("pete", "transfer.events"),
    ]


def test_the_allow_list_is_a_validated_setting() -> None:
    base = {"IVR_DEV": "1", "TWILIO_AUTH_TOKEN": "t", "PUBLIC_BASE_URL": "https://ivr.example.com"}
    default = Settings.from_env(base)
    listed = Settings.from_env(base | {"TRANSFER_RETURN_DESTINATIONS": f" {OUR_PBX} ", "AGENT_TARGET": "client:desk"})
    with pytest.raises(ConfigError) as bad:
        Settings.from_env(base | {"TRANSFER_RETURN_DESTINATIONS": "queue:support,sip:*@evil.test;x=y,*"})

    assert default.return_destinations == ReturnDestinations(("client:*", "queue:*", "queue:agents"))
    assert listed.return_destinations.entries == (*OUR_PBX.split(","), "client:desk")
    assert bad.value.problems == [
        "config error: TRANSFER_RETURN_DESTINATIONS: 'sip:*@evil.test;x=y' is not queue:NAME, client:NAME,"
        " sip:USER@HOST, sip:*@HOST or an E.164 number (queue:, client: and numbers may end in * for any"
        " that begin so)"
    ]


@pytest.mark.parametrize(
    ("target", "allowed"),
    [
        ("client:agent-7\n", False),  # a trailing newline is not a name's end
        ("queue:support", True),
        ("queue:supportx", False),
        ("+14155550100", True),
        ("+1415555", False),  # not a number, only the beginning of some
        ("sip:bob@pbx.example.com;transport=udp", True),
        ("sip:bob@pbx.example.com;maddr=evil.test", False),
        ("sip:bob@evil.test@pbx.example.com", False),
    ],
)
def test_what_each_entry_matches(target: str, allowed: bool) -> None:
    assert ReturnDestinations.parse(OUR_PBX).allows(target) is allowed
