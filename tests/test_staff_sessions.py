"""A staff-pages session ends with its token or its user (issue 16, finding 2).

Revoking the token a session was opened with, disabling its user or setting the user's
password ends it at its next request: the browser is sent to the sign-in form, as with no
session at all, for the pages and for evidence bundles alike.
"""

from __future__ import annotations

import asyncio
import secrets
from urllib.parse import quote

import aiohttp
from click.testing import CliRunner, Result

from ivr import appkeys
from ivr.cli import main
from storage.tokens import create_token
from tests.conftest import Service, Storage
from tests.test_staff_pages import PASSWORD, sign_in, staff_user

NEW_PASSWORD = "a much longer passphrase now"


async def ivr(storage: Storage, *args: str, typed: str | None = None) -> Result:
    """``ivr ARGS`` as an operator runs it, beside the running service (its own event loop)."""
    env = {"DATABASE_URL": storage.database_url, "IVR_DATA_DIR": "var-tests"}
    return await asyncio.to_thread(CliRunner().invoke, main, list(args), input=typed, env=env)


def a_browser() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def signed_in_as(service: Service, form: dict[str, str]) -> aiohttp.ClientSession:
    browser = a_browser()
    async with await sign_in(browser, service, form) as resp:
        assert resp.status == 200 and str(resp.url).endswith("/staff"), await resp.text()
    return browser


def session_key(browser: aiohttp.ClientSession) -> str:
    cookie = next(c for c in browser.cookie_jar if c.key == "ivr_session")
    return "ivr:web:" + cookie.value


async def a_call(twilio) -> str:
    call = twilio.call()
    await call.dial()
    await call.keys("2", "2", "1")
    return call.call_sid


async def assert_sent_to_sign_in(browser: aiohttp.ClientSession, service: Service, path: str) -> None:
    """What a browser gets with no session: 303 to the sign-in form, which it then shows."""
    async with browser.get(service.base_url + path, allow_redirects=False) as resp:
        assert resp.status == 303, (path, resp.status)
        assert resp.headers["Location"] == f"/staff/login?next={quote(path)}"
    async with browser.get(service.base_url + path) as resp:
        page = await resp.text()
        assert resp.status == 200 and resp.url.path == "/staff/login" and 'name="password"' in page


async def test_revoking_a_token_ends_the_page_sessions_opened_with_it(service, storage, twilio) -> None:
    call_sid = await a_call(twilio)
    async with service.pool.acquire() as conn:
        token, secret = await create_token(conn, f"ops-{secrets.token_hex(3)}", "staff")
    browser = await signed_in_as(service, {"token": secret})
    other = await signed_in_as(service, {"token": secret})
    bundle = f"/staff/calls/{call_sid}/evidence.zip"
    redis = service.app[appkeys.REDIS]
    try:
        async with browser.get(service.base_url + bundle) as resp:
            assert resp.status == 200 and (await resp.read()).startswith(b"PK")
        key = session_key(browser)
        assert await redis.exists(key)

        result = await ivr(storage, "tokens", "revoke", str(token.id))
        assert result.exit_code == 0, result.output

        await assert_sent_to_sign_in(browser, service, bundle)
        await assert_sent_to_sign_in(other, service, f"/staff/calls/{call_sid}")
        assert not await redis.exists(key)  # the ended session is gone from Redis too
        async with a_browser() as fresh, await sign_in(fresh, service, {"token": secret}) as resp:
            assert "did not sign you in" in await resp.text()
    finally:
        await browser.close()
        await other.close()


async def test_a_disabled_user_is_signed_out_at_once_and_enabling_lets_them_sign_in_again(
    service, storage, twilio
) -> None:
    call_sid = await a_call(twilio)
    name = await staff_user(service)
    form = {"username": name, "password": PASSWORD}
    before = await signed_in_as(service, form)
    try:
        result = await ivr(storage, "users", "disable", name)
        assert result.exit_code == 0 and "disabled" in result.output, result.output
        await assert_sent_to_sign_in(before, service, f"/staff/calls/{call_sid}/evidence.zip")
        async with a_browser() as browser, await sign_in(browser, service, form) as resp:
            assert "did not sign you in" in await resp.text()
        again = await ivr(storage, "users", "disable", name)
        assert again.exit_code == 1 and f"no enabled user {name}" in again.output

        result = await ivr(storage, "users", "enable", name)
        assert result.exit_code == 0, result.output
        after = await signed_in_as(service, form)
        async with after.get(f"{service.base_url}/staff/calls/{call_sid}") as resp:
            assert resp.status == 200
        await after.close()
        await assert_sent_to_sign_in(before, service, "/staff")  # what the disable ended stays ended
    finally:
        await before.close()
    assert (await ivr(storage, "users", "enable", name)).exit_code == 1  # already enabled


async def test_a_new_password_ends_every_session_of_that_user(service, storage) -> None:
    name = await staff_user(service)
    bystander = await staff_user(service)
    old = {"username": name, "password": PASSWORD}
    sessions = [await signed_in_as(service, old) for _ in range(2)]
    theirs = await signed_in_as(service, {"username": bystander, "password": PASSWORD})
    try:
        result = await ivr(storage, "users", "passwd", name, typed=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n")
        assert result.exit_code == 0, result.output
        for browser in sessions:
            await assert_sent_to_sign_in(browser, service, "/staff/requests")
        async with theirs.get(f"{service.base_url}/staff/requests") as resp:
            assert resp.status == 200  # someone else's password did not end anyone else's session
        async with a_browser() as browser, await sign_in(browser, service, old) as resp:
            assert "did not sign you in" in await resp.text()
        await (await signed_in_as(service, {"username": name, "password": NEW_PASSWORD})).close()
    finally:
        for browser in (*sessions, theirs):
            await browser.close()


async def test_passwd_asks_for_a_long_password_and_a_known_user(service, storage) -> None:
    name = await staff_user(service)
    short = await ivr(storage, "users", "passwd", name, typed="short\nshort\n")
    assert short.exit_code == 1 and "at least 12 characters" in short.output
    nobody = await ivr(storage, "users", "passwd", "nobody-at-all", typed=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n")
    assert nobody.exit_code == 1 and "no user nobody-at-all" in nobody.output
    async with a_browser() as browser, await sign_in(browser, service, {"username": name, "password": PASSWORD}) as r:
        assert r.status == 200 and r.url.path == "/staff"  # the refused change changed nothing
