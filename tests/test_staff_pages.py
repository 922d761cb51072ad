"""The staff pages: sign-in, CSRF, a person's consents, a call's evidence, requests, the access log."""

from __future__ import annotations

import io
import re
import secrets
import zipfile

import aiohttp
import pytest
from click.testing import CliRunner

from ivr.access.passwords import hash_secret
from ivr.app import routes_of
from ivr.cli import main
from storage.users import create_user
from tests.helpers import token_for

PASSWORD = "correct horse battery staple"


async def staff_user(service, role: str = "staff") -> str:
    name = f"{role}-{secrets.token_hex(4)}"  # id() of a collected object comes back: not unique
    async with service.pool.acquire() as conn:
        await create_user(conn, name, role, hash_secret(PASSWORD))
    return name


async def sign_in(browser: aiohttp.ClientSession, service, form: dict[str, str], **options):
    """What a browser does: load the sign-in form (and its CSRF cookie), then post it."""
    async with browser.get(f"{service.base_url}/staff/login") as resp:
        csrf = csrf_of(await resp.text())
    return browser.post(f"{service.base_url}/staff/login", data=form | {"csrf": csrf}, **options)


async def signed_in(service, role: str = "staff") -> aiohttp.ClientSession:
    browser = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    name = await staff_user(service, role)
    async with await sign_in(browser, service, {"username": name, "password": PASSWORD}) as resp:
        assert resp.status == 200 and str(resp.url).endswith("/staff"), await resp.text()
    return browser


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


async def test_pages_need_a_session_and_the_session_cookie_is_safe(service) -> None:
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(f"{service.base_url}/staff/people/+14155550100", allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"].startswith("/staff/login?next=")
    name = await staff_user(service)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        form = {"username": name, "password": PASSWORD}
        async with await sign_in(browser, service, form, allow_redirects=False) as resp:
            cookie = resp.headers["Set-Cookie"]
        async with browser.post(f"{service.base_url}/staff/login", data=form) as forged:  # no CSRF token
            assert forged.status == 403
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/staff" in cookie


async def test_a_wrong_password_does_not_sign_in(service) -> None:
    name = await staff_user(service)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with await sign_in(browser, service, {"username": name, "password": "nope"}) as resp:
            page = await resp.text()
    assert "did not sign you in" in page


async def test_an_agent_token_cannot_sign_in_to_the_staff_pages(service) -> None:
    agent = await token_for(service, "agent", "agent-page")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with await sign_in(browser, service, {"token": agent}) as resp:
            assert "did not sign you in" in await resp.text()


async def test_did_this_customer_opt_out_of_marketing_calls_and_when(service, twilio, db) -> None:
    call = twilio.call()
    await call.dial()
    await call.keys("2", "2", "1")
    browser = await signed_in(service)
    try:
        async with browser.get(f"{service.base_url}/staff", params={"q": call.caller}) as resp:
            page = await resp.text()
            assert str(resp.url).endswith(f"/staff/people/{call.caller}")
    finally:
        await browser.close()

    row = re.search(r'<tr data-purpose="telemarketing">(.*?)</tr>', page, re.S).group(1)
    decided = await db.fetchrow("SELECT recorded_at, honor_by FROM consent_events WHERE call_sid = $1", call.call_sid)
    assert "revoked" in row and decided["recorded_at"].isoformat(timespec="seconds") in row
    assert str(decided["honor_by"]) in row
    assert (
        await db.fetchval("SELECT count(*) FROM access_log WHERE action = 'person.page' AND target = $1", call.caller)
        == 1
    )


async def test_the_call_page_shows_keys_decisions_recordings_and_the_chain_badge(service, twilio, customer, db) -> None:
    call = twilio.call(caller=customer.phones[0])
    await call.dial()
    await call.keys("6", "1", "48317#")
    await call.record(seconds=5)
    await call.press("1")
    browser = await signed_in(service)
    try:
        async with browser.get(f"{service.base_url}/staff/calls/{call.call_sid}") as resp:
            page = await resp.text()
        async with browser.get(f"{service.base_url}/staff/calls/{call.call_sid}/evidence.zip") as resp:
            archive = zipfile.ZipFile(io.BytesIO(await resp.read()))
    finally:
        await browser.close()

    assert '<span class="ok">intact</span>' in page
    assert "[pin withheld]" in page and "48317" not in page
    assert "<audio controls" in page and "testimonial" in page
    assert "evidence.json" in archive.namelist()
    assert await db.fetchval("SELECT count(*) FROM access_log WHERE target = $1", call.call_sid) == 2


async def test_forms_without_the_csrf_token_are_refused(service, twilio, db) -> None:
    call = twilio.call()
    await call.dial()
    await call.keys("8", "1")
    await call.stay_silent()
    request_id = await db.fetchval("SELECT id FROM requests WHERE call_sid = $1", call.call_sid)
    browser = await signed_in(service)
    try:
        url = f"{service.base_url}/staff/requests/{request_id}/status"
        async with browser.post(url, data={"status": "done"}) as forged:
            assert forged.status == 403
        async with browser.get(f"{service.base_url}/staff/requests") as resp:
            token = csrf_of(await resp.text())
        async with browser.post(url, data={"status": "done", "note": "removed", "csrf": token}) as resp:
            assert resp.status == 200 and "removed" in await resp.text()
        for odd in ("%C2%B2", "99999999999999999999", "1%0A"):  # "²", past a bigint, a newline
            odd_url = f"{service.base_url}/staff/requests/{odd}/status"
            async with browser.post(odd_url, data={"status": "done", "csrf": token}) as resp:
                assert resp.status == 400, odd
    finally:
        await browser.close()
    assert await db.fetchval("SELECT status FROM request_events WHERE request_id = $1", request_id) == "done"


async def test_only_admins_open_the_access_log_and_sign_out_ends_the_session(service) -> None:
    staff = await signed_in(service, "staff")
    admin = await signed_in(service, "admin")
    try:
        async with staff.get(f"{service.base_url}/staff/access-log") as resp:
            assert resp.status == 403
        async with admin.get(f"{service.base_url}/staff/access-log") as resp:
            assert resp.status == 200 and 'id="access-log"' in await resp.text()
        async with staff.get(f"{service.base_url}/staff") as resp:
            token = csrf_of(await resp.text())
        async with staff.post(f"{service.base_url}/staff/logout", data={"csrf": token}) as resp:
            assert str(resp.url).endswith("/staff/login")
        async with staff.get(f"{service.base_url}/staff", allow_redirects=False) as resp:
            assert resp.status == 303
    finally:
        await staff.close()
        await admin.close()


async def test_every_staff_page_declares_a_role(service) -> None:
    from ivr.access.roles import declared_roles

    pages = [r for r in routes_of(service.app) if r.resource.canonical.startswith("/staff")]
    assert pages and all(declared_roles(r.handler) for r in pages)


def test_ivr_users_create_refuses_a_short_password(storage) -> None:
    result = CliRunner().invoke(
        main,
        ["users", "create", "--name", "shorty"],
        input="short\nshort\n",
        env={"DATABASE_URL": storage.database_url},
    )
    assert result.exit_code == 1 and "at least 12 characters" in result.output


@pytest.mark.parametrize("query", ["not a number", "12"])
async def test_a_search_that_matches_nothing_says_so(service, query) -> None:
    browser = await signed_in(service)
    try:
        async with browser.get(f"{service.base_url}/staff", params={"q": query}) as resp:
            page = await resp.text()
    finally:
        await browser.close()
    assert "not a phone number, account number or CallSid" in page


async def test_no_staff_page_is_reachable_without_its_role(service) -> None:
    from ivr.access.roles import PUBLIC, declared_roles

    staff = await signed_in(service, "staff")
    admin = await signed_in(service, "admin")
    try:
        for route in routes_of(service.app):
            resource = route.resource
            if not resource.canonical.startswith("/staff") or route.method == "HEAD":
                continue
            roles = declared_roles(route.handler)
            url = service.base_url + re.sub(r"\{[^}]+\}", "CA" + "7" * 32, resource.canonical)
            async with aiohttp.ClientSession() as anonymous:
                async with anonymous.request(route.method, url, allow_redirects=False) as resp:
                    # public pages answer (the sign-in POST refuses a form without its CSRF token)
                    expected = ({403} if route.method == "POST" else {200}) if PUBLIC in roles else {303}
                    assert resp.status in expected, (route.method, url, resp.status)
            if PUBLIC in roles or route.method != "GET":
                continue
            async with staff.get(url, allow_redirects=False) as resp:
                assert (resp.status == 403) == ("staff" not in roles), (url, resp.status)
            async with admin.get(url, allow_redirects=False) as resp:
                assert resp.status != 403, url
    finally:
        await staff.close()
        await admin.close()
