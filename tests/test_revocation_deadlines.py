"""Revocations watched against their honor-by dates (issue 17, item 5): due, overdue, alerted once."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import date, timedelta

import pytest
from aiohttp.test_utils import unused_port

from ivr import appkeys
from ivr.integrations.deadline_watch import ALERTED_PREFIX, alert_overdue
from ivr.ops import endpoints
from tests.conftest import Service, Storage, running_service
from tests.event_receiver import QUICK_DELIVERY, Receiver, event_receiver
from tests.helpers import api, token_for
from tests.test_event_deliveries import revoke_by_phone, until
from tests.test_event_receipts import subscription_with_token
from tests.test_logs import logged
from tests.test_staff_pages import signed_in


@pytest.fixture
async def quick(own_storage: Storage) -> AsyncIterator[Service]:
    # A database of its own: other tests' subscriptions would be owed (and slow) its events.
    async with running_service(own_storage, unused_port(), **QUICK_DELIVERY) as running:
        yield running


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with event_receiver() as receiving:
        yield receiving


def _of(caller: str, answer: dict) -> list[dict]:
    return [r for r in answer["revocations"] if r["subject"] == caller]


async def _last_event(service: Service) -> int:
    async with service.pool.acquire() as conn:
        return await conn.fetchval("SELECT coalesce(max(seq), 0) FROM events")


async def _overdue_gauge(service: Service, http) -> float:
    async with http.get(f"{service.base_url}/metrics") as resp:
        text = await resp.text()
    found = re.search(r"^ivr_revocations_overdue ([0-9.e+]+)$", text, re.MULTILINE)
    assert found, text
    return float(found[1])


async def test_a_revocation_nobody_applied_is_due_then_overdue_alerted_once_until_applied(
    quick, http, receiver, monkeypatch
) -> None:
    crm, crm_token = await subscription_with_token(quick, receiver.url, ["consent.revoked"], "dialer")
    try:
        staff = await token_for(quick, "staff", "deadlines-staff")
        before = await _last_event(quick)  # other tests' revocations come first: page past them
        caller = await revoke_by_phone(quick.base_url, http)
        await receiver.wait_for(1, "consent.revoked", caller)
        due_url = f"{quick.base_url}/api/revocations/due?after={before}"

        async def delivered() -> bool:
            _, answer = await api(http, "GET", due_url, staff)
            return bool(_of(caller, answer) and _of(caller, answer)[0]["subscriptions"][0]["delivered_at"])

        await until(delivered)
        status, answer = await api(http, "GET", due_url, staff)
        [due] = _of(caller, answer)
        assert status == 200 and due["purpose"] == "telemarketing" and due["overdue"] is False
        [owed] = due["subscriptions"]
        assert (owed["subscription_id"], owed["name"], owed["applied_at"], owed["dead_lettered"]) == (
            crm,
            "dialer",
            None,
            False,
        )
        honor_by = date.fromisoformat(due["honor_by"])
        assert honor_by > date.today()  # business days after today

        # The day after its honor-by date: overdue.
        late = honor_by + timedelta(days=1)
        _, answer = await api(http, "GET", f"{due_url}&as_of={late.isoformat()}", staff)
        assert _of(caller, answer)[0]["overdue"] is True
        assert (await api(http, "GET", f"{due_url}&as_of=2026-13-01", staff))[0] == 400
        _, on_the_day = await api(http, "GET", f"{due_url}&as_of={honor_by.isoformat()}", staff)
        assert _of(caller, on_the_day)[0]["overdue"] is False  # honored on the day is in time

        # The watch alerts once, however often it looks (and from however many processes).
        redis = quick.app[appkeys.REDIS]
        with logged() as lines:
            await alert_overdue(quick.pool, redis, late)
            await alert_overdue(quick.pool, redis, late)
        event_id = due["event_id"]
        alerts = [json.loads(line) for line in lines.getvalue().splitlines() if "ALERT_revocation_overdue" in line]
        mine = [a for a in alerts if a["event_id"] == event_id]
        assert len(mine) == 1 and mine[0]["level"] == "error" and mine[0]["honor_by"] == honor_by.isoformat()
        async with quick.pool.acquire() as conn:
            decision = await conn.fetchval("SELECT event_id FROM consent_events WHERE subject = $1", caller)
        assert await redis.exists(f"{ALERTED_PREFIX}{decision}")

        # The gauge, set when /metrics is scraped, counts it (the clock moved to that day).
        monkeypatch.setattr(endpoints, "business_today", lambda tz: late)
        overdue_before = await _overdue_gauge(quick, http)
        assert overdue_before >= 1

        # The staff page shows the same.
        async with await signed_in(quick) as browser, browser.get(f"{quick.base_url}/staff/revocations") as resp:
            page = await resp.text()
            assert resp.status == 200 and event_id in page and "dialer" in page and "not applied" in page
            assert "<style" not in page and " style=" not in page

        # Applied by its only subscriber: no longer due, nor counted.
        status, _ = await api(http, "POST", f"{quick.base_url}/api/events/{event_id}/applied", crm_token)
        assert status == 201
        _, answer = await api(http, "GET", f"{due_url}&as_of={late.isoformat()}", staff)
        assert _of(caller, answer) == []
        assert await _overdue_gauge(quick, http) == overdue_before - 1
        assert (await api(http, "GET", due_url, None))[0] == 401
    finally:
        async with quick.pool.acquire() as conn:
            await conn.fetchval("SELECT remove_subscription($1)", crm)


async def test_a_removed_subscription_is_owed_nothing(quick, http, receiver) -> None:
    sub, _ = await subscription_with_token(quick, receiver.url, ["consent.revoked"], "gone-soon")
    staff = await token_for(quick, "staff", "deadlines-staff-2")
    due_url = f"{quick.base_url}/api/revocations/due?after={await _last_event(quick)}"
    caller = await revoke_by_phone(quick.base_url, http)
    await receiver.wait_for(1, "consent.revoked", caller)
    _, answer = await api(http, "GET", due_url, staff)
    assert len(_of(caller, answer)) == 1
    async with quick.pool.acquire() as conn:
        await conn.fetchval("SELECT remove_subscription($1)", sub)
    _, answer = await api(http, "GET", due_url, staff)
    assert _of(caller, answer) == []
