"""The recording fetcher trusts Twilio's end no further than it must (issue 16, finding 6).

Against the local fake of Twilio's media endpoint: redirects are not followed (and our
credentials never reach where they point), only audio is kept and only up to
RECORDING_MAX_BYTES, a webhook's AccountSid never shapes the URL, and playback is audio
with nosniff whatever was once stored.
"""

from __future__ import annotations

import asyncio
import secrets

import pytest
from aiohttp.test_utils import unused_port

from ivr.evidence.call_evidence import Audio
from ivr.settings import ConfigError, Settings
from tests import test_recording_fetch as fetch_tests
from tests.conftest import AUTH_TOKEN, running_service
from tests.fake_twilio import ACCOUNT_SID, FakeTwilio
from tests.helpers import token_for
from tests.test_recording_fetch import FAST, _announce, record_a_statement, wait_for_status
from tests.test_staff_pages import signed_in

fetching, media_server = fetch_tests.fetching, fetch_tests.media_server  # the fixtures, for these tests too
ONCE = FAST | {"RECORDING_MAX_ATTEMPTS": "1"}  # the first failure is the last: it shows as failed


async def kept_rows(db, sid: str) -> tuple[int, int]:
    media = await db.fetchval("SELECT count(*) FROM recording_media WHERE recording_sid = $1", sid)
    blobs = await db.fetchval("SELECT count(*) FROM recording_blobs WHERE recording_sid = $1", sid)
    return media, blobs


async def first_failure(db, sid: str) -> str:
    for _ in range(160):
        error = await db.fetchval("SELECT last_error FROM recording_fetches WHERE recording_sid = $1", sid)
        if error:
            return str(error)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no attempt at {sid} failed")


async def test_a_redirect_is_not_followed_and_our_credentials_never_reach_its_target(
    fetching, media_server, customer, db
) -> None:
    sid = "RE" + secrets.token_hex(16)
    media_server.scripts[sid] = ["redirect", "redirect"]
    await _announce(fetching, customer, sid)

    assert "HTTP 302 from Twilio: a redirect, not followed" in await first_failure(db, sid)
    assert await kept_rows(db, sid) == (0, 0)
    row = await wait_for_status(db, sid, "fetched")  # retried like a 5xx, until Twilio answers

    assert row["attempts"] == 3
    assert media_server.internal_hits == []  # the same-origin target never saw us, nor our credentials


async def test_an_html_body_is_refused_and_nothing_is_stored(storage, media_server, customer, db, http) -> None:
    sid = "RE" + secrets.token_hex(16)
    media_server.scripts[sid] = ["html"]
    async with running_service(storage, unused_port(), TWILIO_API_BASE_URL=media_server.url, **ONCE) as running:
        await _announce(FakeTwilio(http, running.base_url, AUTH_TOKEN), customer, sid)
        row = await wait_for_status(db, sid, "failed")

    assert "content type 'text/html' is not audio: not kept" in row["last_error"]
    assert await kept_rows(db, sid) == (0, 0)


@pytest.mark.parametrize("step", ["big", "big-announced"])
async def test_a_body_over_the_cap_is_refused(storage, media_server, customer, db, http, step: str) -> None:
    sid = "RE" + secrets.token_hex(16)
    media_server.scripts[sid], media_server.big_bytes = [step], 10_000
    capped = ONCE | {"TWILIO_API_BASE_URL": media_server.url, "RECORDING_MAX_BYTES": "4096"}
    async with running_service(storage, unused_port(), **capped) as running:
        await _announce(FakeTwilio(http, running.base_url, AUTH_TOKEN), customer, sid)
        row = await wait_for_status(db, sid, "failed")

    assert "RECORDING_MAX_BYTES (4096)" in row["last_error"]
    assert await kept_rows(db, sid) == (0, 0)


async def test_an_account_sid_with_dot_dots_gets_400_and_nothing_is_fetched(
    fetching, media_server, customer, db
) -> None:
    sid = "RE" + secrets.token_hex(16)
    call = fetching.call(caller=customer.phones[0])
    await call.dial()
    traversal = "AC/../../../internal-only?leak="
    status = call.params() | {"AccountSid": traversal, "RecordingSid": sid, "RecordingStatus": "completed"}

    answer = await fetching.post(fetching.url("/twilio/recording-status"), status)
    dialled = await fetching.post(fetching.url("/twilio/voice"), fetching.call().params() | {"AccountSid": traversal})

    assert (answer.status, dialled.status) == (400, 400)
    assert await db.fetchval("SELECT count(*) FROM recording_fetches WHERE recording_sid = $1", sid) == 0
    await asyncio.sleep(0.3)
    assert sid not in [requested for requested, _ in media_server.requests]
    assert media_server.internal_hits == []


async def test_another_accounts_webhook_is_refused(fetching, customer, db) -> None:
    sid = "RE" + secrets.token_hex(16)
    call = fetching.call(caller=customer.phones[0])
    await call.dial()
    other = "AC" + secrets.token_hex(16)
    status = call.params() | {"AccountSid": other, "RecordingSid": sid, "RecordingStatus": "completed"}

    answer = await fetching.post(fetching.url("/twilio/recording-status"), status)
    dialled = fetching.call()
    rang = await fetching.post(fetching.url("/twilio/voice"), dialled.params() | {"AccountSid": other})

    assert (answer.status, rang.status) == (403, 403)
    assert await db.fetchval("SELECT count(*) FROM recording_fetches WHERE recording_sid = $1", sid) == 0
    assert await db.fetchval("SELECT count(*) FROM calls WHERE call_sid = $1", dialled.call_sid) == 0


async def test_the_url_names_the_configured_account_never_the_queued_one(
    storage, media_server, customer, db, http
) -> None:
    """A fetch queued with a hostile account (stored before AccountSid was checked, or taken
    by the sweep from a call's row) is fetched from our own account's URL all the same."""
    sid = "RE" + secrets.token_hex(16)
    media_server.scripts[sid] = ["500"]
    slow_retry = FAST | {"TWILIO_API_BASE_URL": media_server.url, "RECORDING_RETRY_BASE_S": "1.0"}
    async with running_service(storage, unused_port(), **slow_retry) as running:
        await _announce(FakeTwilio(http, running.base_url, AUTH_TOKEN), customer, sid)
        await first_failure(db, sid)
        await db.execute(
            "UPDATE recording_fetches SET account_sid = $2 WHERE recording_sid = $1",
            sid,
            "AC/../../../internal-only?leak=",
        )
        row = await wait_for_status(db, sid, "fetched")

    # The fake answers only a URL naming the account of the Basic credentials: ours.
    assert row["attempts"] == 2 and row["size_bytes"] == len(media_server.bytes_for(sid))
    assert media_server.internal_hits == []


@pytest.mark.parametrize(
    ("url", "fine"),
    [
        ("https://api.twilio.com", True),
        ("http://127.0.0.1:8099", True),
        ("http://[::1]:8099", True),
        ("http://localhost:8099", True),
        ("http://api.twilio.com", False),
        ("http://10.0.0.5", False),
        ("http://127.0.0.1.example.com", False),
    ],
)
def test_an_http_api_base_outside_loopback_fails_start_up_naming_the_variable(url: str, fine: bool) -> None:
    env = {"TWILIO_AUTH_TOKEN": "t", "PUBLIC_BASE_URL": "https://ivr.example.com", "TWILIO_API_BASE_URL": url}
    if fine:
        assert Settings.from_env(env).twilio_api_base_url == url
        return
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    assert raised.value.problems == [
        "config error: TWILIO_API_BASE_URL: must be an https:// URL (http:// only to a loopback host, "
        "such as a local test fake)"
    ]


def test_an_account_sid_setting_in_capitals_or_with_a_newline_is_refused() -> None:
    env = {"TWILIO_AUTH_TOKEN": "t", "PUBLIC_BASE_URL": "https://ivr.example.com"}
    for bad in ("AC" + "A" * 32, ACCOUNT_SID + "\n"):
        with pytest.raises(ConfigError, match="TWILIO_ACCOUNT_SID"):
            Settings.from_env(env | {"TWILIO_ACCOUNT_SID": bad})


async def test_playback_is_audio_inline_and_never_sniffed(fetching, media_server, customer, service, http) -> None:
    sid = await record_a_statement(fetching, customer)
    async with service.pool.acquire() as conn:
        await wait_for_status(conn, sid, "fetched")
    staff = await token_for(service, "staff", "listener")
    async with http.get(
        f"{service.base_url}/api/recordings/{sid}/media", headers={"Authorization": f"Bearer {staff}"}
    ) as resp:
        api_headers, api_body = resp.headers, await resp.read()
    browser = await signed_in(service)
    try:
        async with browser.get(f"{service.base_url}/staff/recordings/{sid}") as resp:
            page_headers, page_body = resp.headers, await resp.read()
    finally:
        await browser.close()

    for headers, body in ((api_headers, api_body), (page_headers, page_body)):
        assert body == media_server.bytes_for(sid)
        assert headers["Content-Type"] == "audio/x-wav"  # what Twilio said, and it is audio
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Content-Disposition"] == f'inline; filename="{sid}.wav"'


def test_a_recording_stored_with_another_type_plays_as_wav() -> None:
    """Rows kept before only audio was (a text/html body once was) are still served as audio."""
    for stored in ("text/html", "application/octet-stream", "audio/wav\r\nX-Injected: 1", "image/svg+xml"):
        resp = Audio("RE" + "0" * 32, b"<script>alert(1)</script>", stored).playback()
        assert resp.content_type == "audio/wav", stored
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
