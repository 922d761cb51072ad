"""Swapped recording audio is caught: by `ivr verify`, and before it is played or bundled."""

from __future__ import annotations

import asyncio
import io
import secrets
import zipfile

from aiohttp.test_utils import unused_port
from click.testing import CliRunner

from ivr.access.passwords import hash_secret
from ivr.cli import main
from storage.customers import Customer
from storage.postgres import connect
from tests.conftest import AUTH_TOKEN, CUSTOMER_PIN, running_service
from tests.fake_twilio import FakeTwilio, new_caller
from tests.helpers import api, store_customer, token_for
from tests.test_recording_fetch import FAST, media_server, record_a_statement, wait_for_status  # noqa: F401
from tests.test_staff_pages import signed_in


async def swap_audio(storage, sid: str) -> None:
    """As the tables' owner, with the append-only trigger off: replace the kept bytes."""
    owner = await connect(storage.database_url)
    try:
        async with owner.transaction():
            await owner.execute("ALTER TABLE recording_blobs DISABLE TRIGGER USER")
            await owner.execute(
                "UPDATE recording_blobs SET media = $2 WHERE recording_sid = $1", sid, b"RIFF" + secrets.token_bytes(64)
            )
            await owner.execute("ALTER TABLE recording_blobs ENABLE TRIGGER USER")
    finally:
        await owner.close()


async def test_swapped_audio_is_reported_and_never_served_as_evidence(own_storage, media_server, http) -> None:  # noqa: F811
    async with running_service(own_storage, unused_port(), TWILIO_API_BASE_URL=media_server.url, **FAST) as service:
        customer = Customer(str(secrets.randbelow(10**9) + 10**9), "Ada", hash_secret(CUSTOMER_PIN), (new_caller(),))
        await store_customer(service, customer)
        twilio = FakeTwilio(http, service.base_url, AUTH_TOKEN)
        sid = await record_a_statement(twilio, customer)
        async with service.pool.acquire() as conn:
            await wait_for_status(conn, sid, "fetched")
            call_sid = await conn.fetchval("SELECT call_sid FROM recordings WHERE recording_sid = $1", sid)
        env = {"DATABASE_URL": own_storage.database_url, "IVR_DATA_DIR": "var-tests"}
        before = await asyncio.to_thread(CliRunner().invoke, main, ["verify"], env=env)
        assert before.exit_code == 0, before.output
        assert "1 recording(s) match their chained SHA-256" in before.output

        await swap_audio(own_storage, sid)

        after = await asyncio.to_thread(CliRunner().invoke, main, ["verify"], env=env)
        assert after.exit_code == 1 and "swapped: recording_media id" in after.output and sid in after.output
        staff = await token_for(service, "staff", "media-check")
        status, body = await api(http, "GET", f"{service.base_url}/api/recordings/{sid}/media", staff)
        assert status == 409 and "not served as evidence" in body["error"]
        _, story = await api(http, "GET", f"{service.base_url}/api/calls/{call_sid}/evidence", staff)
        assert story["chain_check"]["intact"] is False
        assert [m["recording_sid"] for m in story["chain_check"]["media_mismatches"]] == [sid]
        browser = await signed_in(service)
        try:
            async with browser.get(f"{service.base_url}/staff/recordings/{sid}") as resp:
                assert resp.status == 409
            async with browser.get(f"{service.base_url}/staff/calls/{call_sid}/evidence.zip") as resp:
                bundle = zipfile.ZipFile(io.BytesIO(await resp.read()))
        finally:
            await browser.close()
        names = bundle.namelist()
        assert f"recordings/{sid}.NOT-GENUINE.txt" in names and f"recordings/{sid}.wav" not in names
