"""Recordings fetched from a fake Twilio media server (real HTTP on loopback) and kept."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import unused_port

from ivr import appkeys
from tests.conftest import AUTH_TOKEN, CUSTOMER_PIN, Storage, running_service
from tests.fake_twilio import ACCOUNT_SID, FakeTwilio
from tests.helpers import token_for

FAST = {
    "RECORDING_RETRY_BASE_S": "0.05",
    "RECORDING_FETCH_TIMEOUT_S": "0.5",
    "RECORDING_CALLBACK_GRACE_S": "300",
}


@dataclass
class MediaServer:
    """Twilio's Recordings endpoint: each recording answers from a script, then with its bytes.

    A script's steps: a status code; ``slow``; ``redirect`` (302 to ``/internal-only`` on
    this same origin, whose visitors are counted); ``html`` (a page with a script, 200);
    ``big`` (audio of ``big_bytes``, chunked, no length said) and ``big-announced`` (with it).
    """

    url: str = ""
    scripts: dict[str, list[str]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    media: dict[str, bytes] = field(default_factory=dict)
    internal_hits: list[str] = field(default_factory=list)  # the Authorization each visitor sent
    big_bytes: int = 10_000

    def bytes_for(self, sid: str) -> bytes:
        return self.media.setdefault(sid, b"RIFF" + secrets.token_bytes(2048))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        sid = request.match_info["sid"]
        self.requests.append((sid, request.headers.get("Authorization", "")))
        expected = f"{request.match_info['account']}:{AUTH_TOKEN}".encode()
        if request.headers.get("Authorization") != "Basic " + base64.b64encode(expected).decode():
            return web.Response(status=401)
        step = self.scripts.get(sid, []).pop(0) if self.scripts.get(sid) else "ok"
        if step == "slow":
            await asyncio.sleep(2)
        if step.isdigit():
            return web.Response(status=int(step))
        if step == "redirect":
            raise web.HTTPFound("/internal-only?leak=1")
        if step == "html":
            return web.Response(text="<script>alert(document.cookie)</script>", content_type="text/html")
        if step.startswith("big"):
            return await self._big(request, announced=step == "big-announced")
        return web.Response(body=self.bytes_for(sid), content_type="audio/x-wav")

    async def _big(self, request: web.Request, *, announced: bool) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "audio/x-wav"})
        if announced:
            resp.content_length = self.big_bytes
        else:
            resp.enable_chunked_encoding()
        await resp.prepare(request)
        for start in range(0, self.big_bytes, 1000):
            await resp.write(b"\0" * min(1000, self.big_bytes - start))
        await resp.write_eof()
        return resp

    async def internal_only(self, request: web.Request) -> web.Response:
        self.internal_hits.append(request.headers.get("Authorization", ""))
        return web.Response(body=b"RIFF" + b"secret internal data", content_type="audio/x-wav")


@pytest.fixture
async def media_server() -> AsyncIterator[MediaServer]:
    server = MediaServer()
    app = web.Application()
    app.router.add_get("/2010-04-01/Accounts/{account}/Recordings/{sid}.wav", server.handle)
    app.router.add_get("/internal-only", server.internal_only)
    runner = web.AppRunner(app)
    await runner.setup()
    port = unused_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    server.url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()


async def record_a_statement(twilio: FakeTwilio, customer, *, callback: bool = True) -> str:
    call = twilio.call(caller=customer.phones[0])
    await call.dial()
    await call.keys("6", "1", CUSTOMER_PIN + "#")
    await call.record(seconds=5)
    await call.press("1")
    if callback:
        await call.recording_processed("completed")
    return next(s.params["RecordingSid"] for s in call.sent if "RecordingSid" in s.params)


async def wait_for_status(db, sid: str, wanted: str, within_s: float = 8.0):
    for _ in range(int(within_s * 20)):
        row = await db.fetchrow(
            "SELECT f.status, f.attempts, f.last_error, m.sha256, m.size_bytes, m.stored_in "
            "FROM recording_fetches f LEFT JOIN recording_media m USING (recording_sid) WHERE f.recording_sid = $1",
            sid,
        )
        if row is not None and row["status"] == wanted:
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"recording {sid} never became {wanted}: {row and dict(row)}")


@pytest.fixture
async def fetching(storage: Storage, media_server: MediaServer, http) -> AsyncIterator[FakeTwilio]:
    async with running_service(storage, unused_port(), TWILIO_API_BASE_URL=media_server.url, **FAST) as running:
        yield FakeTwilio(http, running.base_url, AUTH_TOKEN)


async def test_a_completed_recording_is_fetched_kept_and_its_hash_chained(
    fetching, media_server, customer, db, service
) -> None:
    sid = await record_a_statement(fetching, customer)
    row = await wait_for_status(db, sid, "fetched")

    media = media_server.bytes_for(sid)
    assert (row["sha256"], row["size_bytes"], row["stored_in"]) == (
        hashlib.sha256(media).hexdigest(),
        len(media),
        "postgres",
    )
    blob = await db.fetchrow("SELECT media, key_id FROM recording_blobs WHERE recording_sid = $1", sid)
    assert blob["key_id"] is not None and media[:16] not in blob["media"]  # sealed at rest
    assert await service.app[appkeys.MEDIA_STORE].get(db, sid) == media  # and opens to the audio itself
    media_id = await db.fetchval("SELECT id FROM recording_media WHERE recording_sid = $1", sid)
    assert (
        await db.fetchval("SELECT count(*) FROM ledger WHERE kind = 'recording_media' AND ref_id = $1", media_id) == 1
    )
    # Recordings other tests left unfetched may come first: the service works through its backlog.
    assert sid in [requested for requested, *_ in media_server.requests]


async def test_server_errors_and_timeouts_are_retried_with_backoff(fetching, media_server, customer, db) -> None:
    sid = "RE" + secrets.token_hex(16)
    media_server.scripts[sid] = ["500", "slow", "503"]
    call_sid = await _announce(fetching, customer, sid)
    row = await wait_for_status(db, sid, "fetched")

    assert row["attempts"] == 4
    assert [r for r, _ in media_server.requests].count(sid) == 4
    assert call_sid


async def test_a_refusal_is_not_retried_and_shows_as_failed(storage, media_server, customer, db, http) -> None:
    overrides = FAST | {"TWILIO_API_BASE_URL": media_server.url, "TWILIO_AUTH_TOKEN": "wrong-token"}
    async with running_service(storage, unused_port(), **overrides) as running:
        twilio = FakeTwilio(http, running.base_url, "wrong-token")
        sid = await record_a_statement(twilio, customer)
        row = await wait_for_status(db, sid, "failed")

    assert row["attempts"] == 1 and "HTTP 401" in row["last_error"]
    assert row["sha256"] is None


async def test_a_fetch_interrupted_by_a_restart_resumes_in_the_next_process(
    storage, media_server, customer, db, http
) -> None:
    sid = "RE" + secrets.token_hex(16)
    media_server.scripts[sid] = ["500"]
    slow_retry = FAST | {"TWILIO_API_BASE_URL": media_server.url, "RECORDING_RETRY_BASE_S": "1.5"}
    port = unused_port()
    async with running_service(storage, port, **slow_retry) as running:
        await _announce(FakeTwilio(http, running.base_url, AUTH_TOKEN), customer, sid)
        first = await wait_for_status(db, sid, "pending")
        for _ in range(100):
            first = await db.fetchrow(
                "SELECT attempts, last_error FROM recording_fetches WHERE recording_sid = $1", sid
            )
            if first["attempts"] == 1 and first["last_error"]:
                break
            await asyncio.sleep(0.02)
    assert first["last_error"] == "HTTP 500 from Twilio"  # the process stopped before its retry

    async with running_service(storage, port, **slow_retry):
        row = await wait_for_status(db, sid, "fetched")
    assert row["attempts"] == 2


async def test_a_recording_whose_callback_never_comes_is_fetched_anyway(
    storage, media_server, customer, db, http
) -> None:
    overrides = FAST | {"TWILIO_API_BASE_URL": media_server.url, "RECORDING_CALLBACK_GRACE_S": "0.2"}
    async with running_service(storage, unused_port(), **overrides) as running:
        sid = await record_a_statement(FakeTwilio(http, running.base_url, AUTH_TOKEN), customer, callback=False)
        row = await wait_for_status(db, sid, "fetched")
    assert row["size_bytes"] == len(media_server.bytes_for(sid))


async def test_recordings_can_be_kept_in_a_directory(storage, media_server, customer, db, http, tmp_path: Path) -> None:
    overrides = FAST | {
        "TWILIO_API_BASE_URL": media_server.url,
        "RECORDING_STORE": "directory",
        "IVR_DATA_DIR": str(tmp_path),
    }
    async with running_service(storage, unused_port(), **overrides) as running:
        sid = await record_a_statement(FakeTwilio(http, running.base_url, AUTH_TOKEN), customer)
        row = await wait_for_status(db, sid, "fetched")
        staff = await token_for(running, "staff", "listener")
        url = f"{running.base_url}/api/recordings/{sid}/media"
        async with http.get(url, headers={"Authorization": f"Bearer {staff}"}) as resp:
            played = await resp.read()

    assert played == media_server.bytes_for(sid)  # playback reads the directory too
    assert row["stored_in"] == "directory"
    kept = (tmp_path / "recordings" / f"{sid}.sealed").read_bytes()
    assert media_server.bytes_for(sid)[:16] not in kept  # sealed at rest (tests/test_recordings_at_rest.py)
    assert not (tmp_path / "recordings" / f"{sid}.wav").exists()


async def _announce(twilio: FakeTwilio, customer, recording_sid: str) -> str:
    """A status callback for a recording of a real call (the call exists; the recording is announced)."""
    call = twilio.call(caller=customer.phones[0])
    await call.dial()
    params = {
        "AccountSid": ACCOUNT_SID,
        "CallSid": call.call_sid,
        "RecordingSid": recording_sid,
        "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{recording_sid}",
        "RecordingStatus": "completed",
        "RecordingDuration": "4",
        "RecordingChannels": "1",
        "RecordingSource": "RecordVerb",
        "ErrorCode": "0",
    }
    answer = await twilio.post(twilio.url("/twilio/recording-status"), params)
    assert answer.status == 200
    return call.call_sid
