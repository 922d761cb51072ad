"""Prometheus metrics: webhook latency, decisions, signature failures; no numbers or CallSids in them."""

from __future__ import annotations

import re

from tests.fake_twilio import FakeTwilio


async def test_metrics_count_webhooks_decisions_and_forgeries_without_personal_data(
    service, twilio: FakeTwilio
) -> None:
    call = twilio.call()
    await call.dial()
    await call.keys("2", "2", "1")
    await twilio.post(twilio.url("/twilio/voice"), call.params(), signature="forged")
    async with twilio.http.get(f"{service.base_url}/metrics") as resp:
        text = await resp.text()
        assert resp.status == 200 and resp.content_type.startswith("text/plain")

    assert 'ivr_webhook_seconds_count{route="/twilio/answer"} 3.0' in text
    assert 'ivr_call_step_seconds_count{kind="menu"} 2.0' in text  # the two menu keys: session only
    assert 'ivr_call_step_seconds_count{kind="commit"} 1.0' in text  # the confirm: evidence first
    assert 'ivr_decisions_total{action="revoke",channel="keypad",purpose="telemarketing"} 1.0' in text
    assert "ivr_signature_failures_total 1.0" in text
    assert re.search(r"ivr_pg_pool_size \d", text) and "ivr_recording_fetch_backlog" in text
    assert call.caller not in text and call.call_sid not in text


async def test_with_metrics_off_there_is_no_metrics_page_and_calls_still_work(storage, http) -> None:
    from aiohttp.test_utils import unused_port

    from tests.conftest import AUTH_TOKEN, running_service

    async with running_service(storage, unused_port(), METRICS_ENABLED="false") as bare:
        phone = FakeTwilio(http, bare.base_url, AUTH_TOKEN)
        call = phone.call()
        await call.dial()
        done = await call.keys("2", "2", "1")
        async with http.get(f"{bare.base_url}/metrics") as resp:
            assert resp.status == 404
    assert "recorded" in done.heard


async def test_with_a_metrics_token_only_its_holder_reads_the_metrics(storage, http) -> None:
    from aiohttp.test_utils import unused_port

    from tests.conftest import running_service

    async with running_service(storage, unused_port(), METRICS_TOKEN="scrape-me-0123456789") as guarded:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "scrape-me-0123456789"}):
            async with http.get(f"{guarded.base_url}/metrics", headers=headers) as resp:
                assert resp.status == 401 and resp.headers["WWW-Authenticate"] == "Bearer"
        async with http.get(
            f"{guarded.base_url}/metrics", headers={"Authorization": "Bearer scrape-me-0123456789"}
        ) as resp:
            assert resp.status == 200 and "ivr_" in await resp.text()
