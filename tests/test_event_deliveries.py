"""Events reach subscribers (issue 17): signed by the Standard Webhooks spec (verified here with
``standardwebhooks``, an implementation we did not write), retried, in order per subject, at
least once across processes, and each delivery chained as a receipt."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp.test_utils import unused_port
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from standardwebhooks import Webhook

from ivr import appkeys
from storage.outbox import seq_of
from tests.conftest import AUTH_TOKEN, Service, Storage, running_service
from tests.event_receiver import QUICK_DELIVERY, Receiver, event_receiver
from tests.fake_twilio import FakeTwilio, new_caller
from tests.helpers import api, spawn_ivr, token_for, wait_ready


@pytest.fixture
async def quick(storage: Storage) -> AsyncIterator[Service]:
    """The service with deliveries polled often, retried after a fifth of a second, to loopback."""
    async with running_service(storage, unused_port(), **QUICK_DELIVERY) as running:
        yield running


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with event_receiver() as receiving:
        yield receiving


@pytest.fixture
async def subscribe(quick: Service, http):
    """Subscribe through the admins' API; every subscription made is removed when the test ends."""
    admin = await token_for(quick, "admin", "events-admin")
    made: list[int] = []

    async def subscribe_to(url: str, events: list[str], **extra: object) -> dict:
        status, body = await api(
            http, "POST", f"{quick.base_url}/api/subscriptions", admin, {"url": url, "events": events} | extra
        )
        assert status == 201, body
        made.append(body["id"])
        return body

    subscribe_to.admin = admin  # type: ignore[attr-defined]
    yield subscribe_to
    async with quick.pool.acquire() as conn:
        for subscription_id in made:
            await conn.fetchval("SELECT remove_subscription($1)", subscription_id)


async def revoke_by_phone(base_url: str, http, caller: str | None = None, key: str = "2") -> str:
    """What Twilio does when a caller revokes on the consent line (2 telemarketing, 3 e-mail …)."""
    call = FakeTwilio(http, base_url, AUTH_TOKEN).call(caller=caller or new_caller())
    await call.dial()
    await call.keys(key, "2", "1")
    return call.caller


async def receipts(service: Service, subscription_id: int, seq: int) -> list:
    async with service.pool.acquire() as conn:
        return await conn.fetch(
            """
            SELECT d.*, l.seq AS ledger_seq FROM event_deliveries d
            JOIN ledger l ON l.kind = 'event_deliveries' AND l.ref_id = d.id
            WHERE d.subscription_id = $1 AND d.seq = $2
            """,
            subscription_id,
            seq,
        )


async def until(check, within_s: float = 10) -> None:
    for _ in range(int(within_s / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("never happened")


async def test_a_revocation_by_phone_reaches_a_subscriber_within_seconds_signed_by_the_standard(
    quick, http, receiver, subscribe
) -> None:
    sub = await subscribe(receiver.url, ["consent.revoked"], name="dialer")
    assert sub["secret"].startswith("whsec_") and 24 <= len(base64.b64decode(sub["secret"][6:])) <= 64
    caller = await revoke_by_phone(quick.base_url, http)

    await receiver.wait_for(1, "consent.revoked", caller, within_s=5)
    [got] = receiver.of_type("consent.revoked", caller)
    payload = Webhook(sub["secret"]).verify(got.body, got.headers)
    assert got.headers["webhook-id"] == payload["id"] and seq_of(payload["id"]) is not None
    assert {k: payload[k] for k in ("specversion", "type", "source", "datacontenttype")} == {
        "specversion": "1.0",
        "type": "consent.revoked",
        "source": quick.base_url,
        "datacontenttype": "application/json",
    }
    data = payload["data"]
    assert (data["subject"], data["purpose"], data["action"], data["channel"]) == (
        caller,
        "telemarketing",
        "revoke",
        "keypad",
    )
    assert data["honor_by"] and data["record"]["table"] == "consent_events"
    assert data["ledger"]["seq"] == seq_of(payload["id"])
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + base64.b64encode(b"x" * 32).decode()).verify(got.body, got.headers)

    seq = seq_of(payload["id"])
    await until(lambda: receipts(quick, sub["id"], seq))
    [receipt] = await receipts(quick, sub["id"], seq)
    assert (receipt["event_id"], receipt["attempt"], receipt["http_status"], receipt["url"]) == (
        payload["id"],
        1,
        200,
        receiver.url,
    )


async def test_a_receiver_answering_503_then_200_gets_one_id_twice_and_one_receipt_in_order(
    quick, http, receiver, subscribe
) -> None:
    receiver.answers = [503]
    sub = await subscribe(receiver.url, ["consent.revoked"])
    caller = new_caller()
    await revoke_by_phone(quick.base_url, http, caller, key="2")  # telemarketing
    await revoke_by_phone(quick.base_url, http, caller, key="3")  # e-mail, a second event for the same subject

    await receiver.wait_for(3, "consent.revoked", caller)
    got = receiver.of_type("consent.revoked", caller)
    first, again, second = (r.headers["webhook-id"] for r in got)
    assert first == again != second  # the later event waited for the earlier one to get through
    assert [r.envelope["data"]["purpose"] for r in got] == ["telemarketing", "telemarketing", "email"]
    seq = seq_of(first)
    await until(lambda: receipts(quick, sub["id"], seq))
    await asyncio.sleep(0.3)  # time for a duplicate, were there one
    [receipt] = await receipts(quick, sub["id"], seq)
    assert (receipt["attempt"], receipt["http_status"]) == (2, 200)


async def test_retry_after_is_honoured_and_the_last_failure_is_a_dead_letter(quick, http, receiver, subscribe) -> None:
    receiver.answers = [(429, {"Retry-After": "1"}), 500, 500, 500]
    sub = await subscribe(receiver.url, ["consent.revoked"])
    caller = await revoke_by_phone(quick.base_url, http)

    await receiver.wait_for(2, "consent.revoked", caller)
    first, second = receiver.of_type("consent.revoked", caller)[:2]
    assert int(second.headers["webhook-timestamp"]) - int(first.headers["webhook-timestamp"]) >= 1
    status, dead = await api(
        http, "GET", f"{quick.base_url}/api/subscriptions/{sub['id']}/dead-letters", subscribe.admin
    )

    async def dead_lettered() -> bool:
        nonlocal dead
        _, dead = await api(
            http, "GET", f"{quick.base_url}/api/subscriptions/{sub['id']}/dead-letters", subscribe.admin
        )
        return bool(dead["dead_letters"])

    await until(dead_lettered)
    [letter] = dead["dead_letters"]
    assert (letter["attempts"], letter["last_status"], letter["type"]) == (4, 500, "consent.revoked")
    _, listed = await api(http, "GET", f"{quick.base_url}/api/subscriptions", subscribe.admin)
    [mine] = [s for s in listed["subscriptions"] if s["id"] == sub["id"]]
    assert mine["deliveries"]["dead"] == 1 and "secret" not in mine


async def test_410_disables_the_subscription_and_enabling_sends_what_waited(quick, http, receiver, subscribe) -> None:
    receiver.answers = [410]
    sub = await subscribe(receiver.url, ["consent.revoked"])
    caller = await revoke_by_phone(quick.base_url, http)
    await receiver.wait_for(1, "consent.revoked", caller)

    async def disabled() -> bool:
        _, listed = await api(http, "GET", f"{quick.base_url}/api/subscriptions", subscribe.admin)
        return any(s["id"] == sub["id"] and s["state"] == "disabled" for s in listed["subscriptions"])

    await until(disabled)
    await asyncio.sleep(0.5)
    assert len(receiver.of_type("consent.revoked", caller)) == 1  # nothing more while disabled
    status, enabled = await api(http, "POST", f"{quick.base_url}/api/subscriptions/{sub['id']}/enable", subscribe.admin)
    assert (status, enabled["state"]) == (200, "active")
    await receiver.wait_for(2, "consent.revoked", caller)
    first, second = receiver.of_type("consent.revoked", caller)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]


async def test_a_rotated_secret_and_its_predecessor_both_verify_during_the_grace(
    quick, http, receiver, subscribe
) -> None:
    sub = await subscribe(receiver.url, ["consent.revoked"])
    status, rotated = await api(
        http, "POST", f"{quick.base_url}/api/subscriptions/{sub['id']}/rotate-secret", subscribe.admin
    )
    assert status == 201 and rotated["secret"] != sub["secret"] and rotated["previous_secret_until"]
    caller = await revoke_by_phone(quick.base_url, http)

    await receiver.wait_for(1, "consent.revoked", caller)
    [got] = receiver.of_type("consent.revoked", caller)
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    assert Webhook(sub["secret"]).verify(got.body, got.headers)["id"] == got.headers["webhook-id"]
    assert Webhook(rotated["secret"]).verify(got.body, got.headers)["id"] == got.headers["webhook-id"]


async def test_an_ed25519_subscription_is_signed_v1a(quick, http, receiver, subscribe) -> None:
    sub = await subscribe(receiver.url, ["consent.revoked"], ed25519=True)
    assert sub["secret"].startswith("whpk_") and sub["scheme"] == "v1a"
    caller = await revoke_by_phone(quick.base_url, http)

    await receiver.wait_for(1, "consent.revoked", caller)
    [got] = receiver.of_type("consent.revoked", caller)
    version, _, signature = got.headers["webhook-signature"].partition(",")
    assert version == "v1a"
    signed = f"{got.headers['webhook-id']}.{got.headers['webhook-timestamp']}.".encode() + got.body
    Ed25519PublicKey.from_public_bytes(base64.b64decode(sub["secret"][5:])).verify(base64.b64decode(signature), signed)


@pytest.mark.parametrize(
    "url",
    [
        "http://receiver.example/hook",
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://[::1]/hook",
        "https://[::ffff:192.168.0.1]/hook",
        "https://169.254.169.254/latest",
        "https://localhost/hook",
        "https://user:pw@receiver.example/hook",
        "ftp://receiver.example/",
    ],
)
async def test_plain_http_and_private_targets_are_refused_without_the_flag(service, http, url: str) -> None:
    admin = await token_for(service, "admin", "ssrf-admin")
    status, body = await api(
        http, "POST", f"{service.base_url}/api/subscriptions", admin, {"url": url, "events": ["*"]}
    )
    assert status == 422, body
    assert "url" in body["error"]


async def test_a_target_that_turns_private_is_refused_at_delivery(storage, http, receiver) -> None:
    """Added with the flag (or when its name pointed elsewhere), delivered by a service without it."""
    async with running_service(
        storage, unused_port(), EVENT_POLL_INTERVAL_S="0.05", EVENT_RETRY_SCHEDULE_S="0.2"
    ) as strict:
        async with strict.pool.acquire() as conn:
            sub = await conn.fetchval(
                "SELECT create_subscription('turned', $1, ARRAY['consent.revoked'], 'v1', 'whsec_AAAA')",
                receiver.url.replace("http://127.0.0.1", "https://localhost"),
            )
        try:
            await revoke_by_phone(strict.base_url, http)

            async def dead() -> bool:
                async with strict.pool.acquire() as conn:
                    return await conn.fetchval(
                        "SELECT last_error FROM deliveries WHERE subscription_id = $1 AND state = 'dead'", sub
                    )

            await until(dead)
            async with strict.pool.acquire() as conn:
                error = await conn.fetchval("SELECT last_error FROM deliveries WHERE subscription_id = $1", sub)
            assert "not a public address" in error
            assert receiver.received == []
        finally:
            async with strict.pool.acquire() as conn:
                await conn.fetchval("SELECT remove_subscription($1)", sub)


async def test_two_processes_never_send_one_attempt_twice_at_once(storage, http, receiver) -> None:
    receiver.delay_s = 0.3  # slow: a second sender would overlap
    # One request at a time each, so neither process can take every delivery in one claim.
    one_at_a_time = QUICK_DELIVERY | {"EVENT_DELIVERY_CONCURRENCY": "1"}
    async with (
        running_service(storage, unused_port(), **one_at_a_time) as one,
        running_service(storage, unused_port(), **one_at_a_time) as two,
    ):
        async with one.pool.acquire() as conn:
            sub = await conn.fetchval(
                "SELECT create_subscription('two', $1, ARRAY['consent.revoked'], 'v1', 'whsec_AAAA')", receiver.url
            )
        try:
            callers = [await revoke_by_phone((one if n % 2 else two).base_url, http) for n in range(6)]
            for caller in callers:
                await receiver.wait_for(1, "consent.revoked", caller)
            await asyncio.sleep(0.5)
            ids = [r.headers["webhook-id"] for r in receiver.received]
            assert receiver.overlaps == [] and len(ids) == len(set(ids)) == 6
            assert one.app[appkeys.EVENT_DELIVERER].attempts + two.app[appkeys.EVENT_DELIVERER].attempts == 6
            assert one.app[appkeys.EVENT_DELIVERER].attempts and two.app[appkeys.EVENT_DELIVERER].attempts
        finally:
            async with one.pool.acquire() as conn:
                await conn.fetchval("SELECT remove_subscription($1)", sub)


def test_json_envelopes_are_the_same_bytes_on_every_attempt() -> None:
    from datetime import UTC, datetime

    from ivr.integrations.envelope import envelope_body
    from storage.outbox import Event

    event = Event(7, "consent.revoked", "+14155550100", datetime(2026, 12, 1, tzinfo=UTC), {"b": 1, "a": "é"})
    body = envelope_body(event, "https://ivr.example.com")
    assert body == envelope_body(event, "https://ivr.example.com")
    assert json.loads(body)["id"] == "evt_7" and "é".encode() in body


async def test_a_process_killed_mid_delivery_loses_nothing(storage, http, receiver, tmp_path) -> None:
    receiver.hold = asyncio.Event()  # the receiver takes the request and does not answer
    port = unused_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "PUBLIC_BASE_URL")} | {
        "DATABASE_URL": storage.database_url,
        "REDIS_URL": storage.redis_url,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PUBLIC_BASE_URL": base_url,
        "IVR_DATA_DIR": str(tmp_path / "var"),
        "LOG_LEVEL": "ERROR",
        **QUICK_DELIVERY,
    }
    owner = await asyncpg.connect(storage.database_url)
    sub = await owner.fetchval(
        "SELECT create_subscription('killed', $1, ARRAY['consent.revoked'], 'v1', 'whsec_AAAA')", receiver.url
    )
    proc = await spawn_ivr("serve", "--port", str(port), env=env, quiet=True)
    try:
        await wait_ready(http, base_url, proc)
        caller = await revoke_by_phone(base_url, http)
        await receiver.wait_for(1, "consent.revoked", caller)
        proc.kill()  # mid-delivery: the request is out, no answer has come back
        await proc.wait()
        held, receiver.hold = receiver.hold, None
        held.set()

        proc = await spawn_ivr("serve", "--port", str(port), env=env, quiet=True)
        await wait_ready(http, base_url, proc)
        await receiver.wait_for(2, "consent.revoked", caller, within_s=20)  # once the lease ran out
        first, again = receiver.of_type("consent.revoked", caller)[:2]
        assert first.headers["webhook-id"] == again.headers["webhook-id"]
        seq = seq_of(first.headers["webhook-id"])

        async def delivered() -> bool:
            state = await owner.fetchval(
                "SELECT state FROM deliveries WHERE subscription_id = $1 AND seq = $2", sub, seq
            )
            return state == "delivered"

        await until(delivered)
        receipt = await owner.fetchrow(
            "SELECT * FROM event_deliveries WHERE subscription_id = $1 AND seq = $2", sub, seq
        )
        assert (receipt["attempt"], receipt["http_status"]) == (2, 200)
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()
        await owner.fetchval("SELECT remove_subscription($1)", sub)
        await owner.close()
