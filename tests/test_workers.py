"""``ivr serve --workers 2``: two processes on one port, a call spread over both, a clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp
from aiohttp.test_utils import unused_port

from tests.fake_twilio import FakeTwilio
from tests.helpers import spawn_ivr, wait_ready


async def test_two_workers_share_the_port_and_a_call_hops_between_them(tmp_path: Path) -> None:
    port = unused_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "TWILIO_AUTH_TOKEN")}
    env |= {"IVR_DEV": "1", "IVR_DATA_DIR": str(tmp_path / "var"), "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    proc = await spawn_ivr("serve", "--port", str(port), "--workers", "2", env=env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        # A new connection per request, so the kernel spreads them over the workers.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            await wait_ready(http, base_url, proc)
            pids = set()
            # The second worker may still be starting (migrations checked, flows stored) when
            # the first answers: keep asking for a while, not just a burst.
            for _ in range(200):
                async with http.get(base_url + "/healthz") as resp:
                    pids.add((await resp.json())["worker"])
                if len(pids) > 1:
                    break
                await asyncio.sleep(0.05)
            token = (tmp_path / "var" / "dev-twilio-auth-token").read_text().strip()
            call = FakeTwilio(http, base_url, token).call()
            await call.dial()
            await call.keys("2", "2")
            done = await call.press("1")
        proc.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(proc.communicate(), 40)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    assert len(pids) == 2, pids
    assert "Your choice has been recorded" in done.heard
    assert proc.returncode == 0, output.decode()[-2000:]
    assert "2 worker processes share the port." in output.decode()
    assert not (tmp_path / "var" / "postgres" / "postmaster.pid").exists()
