"""cpni.deemed_granted: the 30-day opt-out window running out is noted as evidence and sent."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta

from aiohttp.test_utils import unused_port

from storage.ledger import EvidenceRow, append
from tests.conftest import AUTH_TOKEN, running_service
from tests.event_receiver import QUICK_DELIVERY, event_receiver
from tests.fake_twilio import FakeTwilio


async def notice_given(conn, call_sid: str, caller: str, days_ago: int) -> datetime:
    """A complete CPNI notice as the line stores it, given ``days_ago`` (as if heard then)."""
    flow_version = await conn.fetchval("SELECT flow_version FROM calls WHERE call_sid = $1", call_sid)
    given_at = datetime.now(UTC) - timedelta(days=days_ago)
    row = {
        "call_sid": call_sid,
        "seq": 900,
        "step": "cpni_notice",
        "notice": "cpni",
        "notice_text": "Your account information, called C P N I, ...",
        "text_sha256": hashlib.sha256(b"cpni").hexdigest(),
        "lang": "en",
        "flow_version": flow_version,
        "caller_number": caller,
        "given_at": given_at.isoformat(),
    }
    await append(conn, [EvidenceRow("notices", row)])
    return given_at


async def test_a_number_past_its_cpni_window_is_deemed_granted_once_and_told(storage, http) -> None:
    async with (
        event_receiver() as receiver,
        running_service(storage, unused_port(), **QUICK_DELIVERY, EVENT_DEEMED_SCAN_S="0.2") as service,
    ):
        twilio = FakeTwilio(http, service.base_url, AUTH_TOKEN)
        quiet, restricted, recent = twilio.call(), twilio.call(), twilio.call()
        for call in (quiet, restricted, recent):
            await call.dial()
        await restricted.keys("1", "2", "1")  # restricts CPNI: nothing is deemed for this number
        async with service.pool.acquire() as conn:
            sub = await conn.fetchval(
                "SELECT create_subscription('cpni', $1, ARRAY['cpni.deemed_granted'], 'v1', 'whsec_AAAA')",
                receiver.url,
            )
            given = await notice_given(conn, quiet.call_sid, quiet.caller, days_ago=31)
            await notice_given(conn, restricted.call_sid, restricted.caller, days_ago=31)
            await notice_given(conn, recent.call_sid, recent.caller, days_ago=10)
        try:
            await receiver.wait_for(1, "cpni.deemed_granted", quiet.caller)
            await asyncio.sleep(0.6)  # three more scans: none notes anything twice, nor the others
            [got] = receiver.of_type("cpni.deemed_granted")
            data = got.envelope["data"]
            assert (data["subject"], data["purpose"], data["action"], data["basis"]) == (
                quiet.caller,
                "cpni",
                "grant",
                "deemed_after_notice",
            )
            assert datetime.fromisoformat(data["deemed_from"]) == given + timedelta(days=30)
            async with service.pool.acquire() as conn:
                noted = await conn.fetch(
                    "SELECT subject FROM deemed_approvals WHERE subject = ANY ($1::text[])",
                    [quiet.caller, restricted.caller, recent.caller],
                )
                assert [r["subject"] for r in noted] == [quiet.caller]
                assert await conn.fetchval(
                    "SELECT true FROM ledger WHERE kind = 'deemed_approvals' AND seq = $1", data["ledger"]["seq"]
                )
        finally:
            async with service.pool.acquire() as conn:
                await conn.fetchval("SELECT remove_subscription($1)", sub)
