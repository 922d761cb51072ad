"""Every response carries the security headers, the pages load no inline code, and a body
sent too slowly is cut off (issue 16, findings 7 and 13)."""

from __future__ import annotations

import asyncio
import re

import pytest
from aiohttp.test_utils import unused_port

from ivr.app import routes_of
from tests.conftest import running_service
from tests.helpers import token_for
from tests.test_staff_pages import signed_in

CALL_SID = "CA" + "0" * 32
PLACEHOLDERS = {
    "call_sid": CALL_SID,
    "recording_sid": "RE" + "0" * 32,
    "phone": "+14155550100",
    "subject": "+14155550100",
    "account": "1000000042",
    "transfer_id": "00000000-0000-0000-0000-000000000000",
    "request_id": "1",
    "name": "agent.js",
}


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)(?::[^}]*)?\}", lambda m: PLACEHOLDERS.get(m.group(1), "x"), path)


def assert_safe_headers(headers, where: str) -> None:
    policy = headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy, where
    assert headers.get("X-Content-Type-Options") == "nosniff", where
    assert headers.get("Referrer-Policy") == "no-referrer", where
    assert headers.get("Server") == "consent-ivr", where  # no versions
    if not where.startswith("/assets/"):
        assert headers.get("Cache-Control") == "no-store", where


async def test_every_route_answers_with_the_headers_signed_in_or_not(service, http) -> None:
    staff = await token_for(service, "admin", "headers")
    paths = sorted({concrete(r.resource.canonical) for r in routes_of(service.app) if r.method == "GET"})
    assert len(paths) > 15
    browser = await signed_in(service, "admin")
    try:
        for path in paths:
            for client, headers in ((http, {}), (http, {"Authorization": f"Bearer {staff}"}), (browser, {})):
                async with client.get(service.base_url + path, headers=headers, allow_redirects=False) as resp:
                    assert_safe_headers(resp.headers, path)
                    if resp.content_type == "text/html":
                        assert resp.headers["X-Frame-Options"] == "DENY", path
                        assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    finally:
        await browser.close()


@pytest.mark.parametrize("page", ["/agent", "/staff/login"])
async def test_pages_load_only_their_own_scripts_and_styles(service, http, page: str) -> None:
    async with http.get(service.base_url + page) as resp:
        html = await resp.text()
    assert "<style" not in html and " style=" not in html and not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert not re.search(r"\son[a-z]+=", html)  # no inline handlers either
    for asset in re.findall(r'(?:href|src)="(/assets/[^"]+)"', html):
        async with http.get(service.base_url + asset) as resp:
            assert resp.status == 200 and resp.headers["X-Content-Type-Options"] == "nosniff"
    async with http.get(service.base_url + "/assets/..%2Fagent_page.py") as resp:
        assert resp.status == 404


async def test_a_body_sent_a_byte_at_a_time_is_cut_off(storage) -> None:
    port = unused_port()
    async with running_service(storage, port, BODY_READ_TIMEOUT_S="1"):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /twilio/voice HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 100\r\n\r\nC"
        )
        await writer.drain()
        started = asyncio.get_running_loop().time()
        answer = await asyncio.wait_for(reader.read(4096), 5)
        took = asyncio.get_running_loop().time() - started
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert 0.8 < took < 4
