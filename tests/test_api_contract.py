"""The API against its own OpenAPI document: schemathesis generates requests for every
operation (valid and invalid), sends them over real HTTP to the running service, and
checks each answer with its standard checks: never a 5xx, only documented statuses and
content types, bodies matching the documented schemas, bad input refused with a 4xx.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from aiohttp.test_utils import unused_port
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import positive_data_acceptance
from schemathesis.schemas import BaseSchema

from ivr.api.openapi import OPENAPI
from storage.subscriptions import create_subscription, set_disabled
from storage.tokens import create_token
from tests.conftest import AUTH_TOKEN, Storage, running_service
from tests.fake_twilio import FakeTwilio
from tests.fake_twilio_rest import fake_twilio_rest
from tests.helpers import api, token_for

ROLES = ("agent", "staff", "admin")
MAX_EXAMPLES = 30


@dataclass(frozen=True)
class Live:
    base_url: str
    tokens: dict[str, str]


async def integration_token(service) -> str:
    """A receiver's token, for a subscription kept disabled (nothing is sent during the contract run)."""
    async with service.pool.acquire() as conn:
        sub = await create_subscription(
            conn, "contract", "https://receiver.example/hook", ["consent.revoked"], "v1", "whsec_AA=="
        )
        await set_disabled(conn, sub, "contract test")
        _, secret = await create_token(conn, "contract-integration", "integration", sub)
    return secret


@pytest.fixture(scope="module")
def live(storage: Storage) -> Iterator[Live]:
    """The service (with the fake Twilio REST API behind transfers) on a loop of its own thread.

    Schemathesis sends blocking requests from the test's thread, so the server cannot share
    the test's event loop without deadlocking.
    """
    ready, stop = threading.Event(), threading.Event()
    outcome: dict[str, Live | BaseException] = {}

    async def serve() -> None:
        try:
            async with (
                fake_twilio_rest(AUTH_TOKEN) as rest,
                running_service(storage, unused_port(), TWILIO_API_BASE_URL=rest.url) as service,
            ):
                tokens = {role: await token_for(service, role, f"contract-{role}") for role in ROLES}
                tokens["integration"] = await integration_token(service)
                outcome["live"] = Live(service.base_url, tokens)
                ready.set()
                while not stop.is_set():
                    await asyncio.sleep(0.05)
        except BaseException as exc:  # handed to the test's thread, which reports it
            outcome["error"] = exc
            ready.set()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="contract-service", daemon=True)
    thread.start()
    assert ready.wait(timeout=60), "the service did not start within 60 s"
    if "error" in outcome:
        raise outcome["error"]
    try:
        yield outcome["live"]
    finally:
        stop.set()
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def api_schema(live: Live) -> BaseSchema:
    """The document as the running service serves it (it asks for a token, like every API route)."""
    loaded = schemathesis.openapi.from_url(
        f"{live.base_url}/api/openapi.json", headers={"Authorization": f"Bearer {live.tokens['staff']}"}, timeout=10
    )
    # The test sends each role's real token itself; unknown query parameters are ignored by
    # design (as most HTTP APIs do), so neither is a defect for negative cases to hunt.
    loaded.config.generation.update(with_security_parameters=False, allow_extra_parameters=False)
    return loaded


# Valid by the document yet refused by design: a phone number must be a real one (libphonenumber),
# a purpose or flow one that is deployed, a cursor one a previous page gave, a subscription's URL one that
# resolves to public addresses. JSON Schema cannot say so.
CHECKED_BEYOND_THE_SCHEMA = {
    "POST /api/transfers",
    "GET /api/subjects/{phone}/consents",
    "GET /api/consent-events",
    "GET /api/suppression",
    "POST /api/subscriptions",  # a URL must resolve, to public addresses only
    "POST /api/consents",  # a known purpose, a verified subject, a document that is what it says
}


def _takes_input(operation: dict[str, Any]) -> bool:
    return bool(operation["parameters"]) or "requestBody" in operation


# Test ids come from the module's document at collection time; each test then looks its
# operation up in the document the service served, and fails if it is not there.
# A stream that stays open while the service runs never gives a whole response to validate:
# tests/test_event_pull.py reads it instead.
ENDLESS = {("GET", "/api/events/stream")}
OPERATIONS = [
    (method.upper(), path)
    for path, ops in OPENAPI["paths"].items()
    for method in ops
    if (method.upper(), path) not in ENDLESS
]


# Negative cases need something to get wrong: an operation with no inputs has none.
CASES = [
    pytest.param(method, path, mode, id=f"{method} {path} {mode.value}")
    for method, path in OPERATIONS
    for mode in GenerationMode
    if mode is GenerationMode.POSITIVE or _takes_input(OPENAPI["paths"][path][method.lower()])
]


# Hypothesis over each operation's strategy rather than ``schemathesis.pytest.from_fixture``:
# its parametrize sets ``Function._nodeid``, which pytest 9.2 no longer has.
@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_every_operation_keeps_to_the_openapi_document(
    api_schema: BaseSchema, live: Live, method: str, path: str, mode: GenerationMode
) -> None:
    # Schemathesis leaves out the operation that served the document unless a filter names it.
    operation = api_schema.include(path=path, method=method)[path][method]
    # Called with the least role the document says may call it (admins may call anything).
    token = live.tokens[operation.definition.raw["x-roles"][0]]
    sent: list[Case] = []
    lenient = [positive_data_acceptance] if operation.label in CHECKED_BEYOND_THE_SCHEMA else []

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: a failing run stays short too
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def exchange(case: Case) -> None:
        sent.append(case)
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, excluded_checks=lenient, timeout=10)

    exchange()
    assert sent


async def test_real_records_keep_to_the_openapi_document(live: Live, api_schema: BaseSchema, http) -> None:
    """Generated ids find nothing, so the success bodies are checked here on a real call and transfer."""
    call = FakeTwilio(http, live.base_url, AUTH_TOKEN).call()
    await call.dial()
    await call.keys("2", "2", "1")
    transfer = {"call_sid": call.call_sid, "flow": "consent-line", "return_to": "client:agent-ada"}
    status, created = await api(http, "POST", f"{live.base_url}/api/transfers", live.tokens["agent"], transfer)
    assert status == 201, created
    await call.hang_up()
    requests = [
        ("/api/calls/{call_sid}/evidence", {"path_parameters": {"call_sid": call.call_sid}}),
        ("/api/calls/{call_sid}/evidence.zip", {"path_parameters": {"call_sid": call.call_sid}}),
        ("/api/subjects/{phone}/consents", {"path_parameters": {"phone": call.caller}}),
        ("/api/consent-events", {"query": {"phone": call.caller, "limit": 1}}),
        ("/api/suppression", {"query": {"format": "csv"}}),
        ("/api/suppression", {}),
        ("/api/requests", {}),
        ("/api/access-log", {}),
        ("/api/transfers/{transfer_id}", {"path_parameters": {"transfer_id": created["transfer_id"]}}),
    ]
    for path, parts in requests:
        operation = api_schema[path]["GET"]
        token = live.tokens[operation.definition.raw["x-roles"][0]]
        # Blocking, but the service runs on its own thread's loop, not this one.
        response = operation.Case(**parts).call_and_validate(headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert response.status_code == 200, (path, response.text)


_HUGE_CURSOR = base64.urlsafe_b64encode(b"99999999999999999999").decode()


# What the contract test found, pinned: each was a 500 or a bad parameter silently accepted.
@pytest.mark.parametrize(
    ("role", "method", "path", "body", "status"),
    [
        ("staff", "GET", "/api/suppression?reason=%00", None, 400),
        ("staff", "GET", "/api/consent-events?purpose=%00", None, 400),
        ("staff", "GET", "/api/recordings/%00/media", None, 400),
        ("staff", "GET", f"/api/calls/CA{'%00' * 32}/evidence", None, 400),
        ("staff", "GET", "/api/subjects/+14155550100/consents?as_of=0001-01-01T00:00:00%2B14:00", None, 400),
        ("staff", "GET", f"/api/consent-events?cursor={_HUGE_CURSOR}", None, 400),
        ("staff", "GET", "/api/consent-events?to=", None, 400),
        ("staff", "GET", "/api/consent-events?channel=", None, 400),
        ("staff", "GET", "/api/requests?status=", None, 400),
        ("staff", "POST", "/api/requests/99999999999999999999/status", {"status": "open"}, 404),
        ("staff", "POST", "/api/requests/100001/status", {"status": "open", "note": {"not": "text"}}, 400),
        ("staff", "POST", "/api/requests/100001/status", {"status": "open", "note": "nul \x00"}, 400),
        (
            "agent",
            "POST",
            "/api/transfers",
            {"call_sid": "CA" + "a" * 32, "flow": "consent-line", "return_to": "sip:\x00\x00\x00"},
            400,
        ),
        ("staff", "GET", "/api/events/evt_1?reason=%00", None, 400),
        ("staff", "GET", "/api/events?after=1e3", None, 400),
        ("admin", "POST", "/api/subscriptions", {"url": "https://127.0.0.1/x", "events": ["*"]}, 422),
        ("admin", "POST", "/api/subscriptions", {"url": "https://x.example/\x00", "events": ["*"]}, 422),
        ("admin", "GET", "/api/subscriptions/99999999999999999999/dead-letters", None, 404),
        ("admin", "GET", "/api/access-log?limit=-5", None, 400),
        ("admin", "GET", "/api/access-log?limit=all", None, 400),
    ],
)
async def test_what_the_contract_test_found_stays_fixed(live: Live, http, role, method, path, body, status) -> None:
    headers = {"Authorization": f"Bearer {live.tokens[role]}"}
    async with http.request(method, live.base_url + path, json=body, headers=headers) as resp:
        assert resp.status == status, await resp.text()
        assert "error" in await resp.json()
