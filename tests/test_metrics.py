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
    assert 'ivr_decisions_total{action="revoke",channel="keypad",purpose="telemarketing"} 1.0' in text
    assert "ivr_signature_failures_total 1.0" in text
    assert re.search(r"ivr_pg_pool_size \d", text) and "ivr_recording_fetch_backlog" in text
    assert call.caller not in text and call.call_sid not in text
