"""A wrong password costs the same whether or not the user exists (issue 16, finding 10).

Asserted by counting the scrypt derivations a sign-in makes (and where they run), not
by timing: one each for a real user with a wrong password, an unknown user and a
disabled one, all in a worker thread, never on the event loop.
"""

from __future__ import annotations

import re
import secrets
import threading

import aiohttp
import pytest

from ivr.access import passwords
from ivr.access.passwords import UNKNOWN_USER_HASH, check_password, hash_password, hash_secret, verify_secret
from storage.users import disable_user
from tests.test_staff_pages import PASSWORD, sign_in, staff_user


@pytest.fixture
def derivations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The thread of each scrypt derivation made while the test runs."""
    made: list[int] = []
    derive = passwords._derive

    def counted(*args, **kwargs) -> bytes:
        made.append(threading.get_ident())
        return derive(*args, **kwargs)

    monkeypatch.setattr(passwords, "_derive", counted)
    return made


def parameters(stored: str) -> tuple[str, ...]:
    """Scheme, N, r, p and the lengths of salt and digest: everything the cost depends on."""
    scheme, n, r, p, salt, digest = stored.split("$")
    return scheme, n, r, p, str(len(salt)), str(len(digest))


def test_the_stand_in_hash_costs_what_a_real_one_does_and_matches_nothing() -> None:
    assert parameters(UNKNOWN_USER_HASH) == parameters(hash_secret("any password at all"))
    assert not verify_secret("", UNKNOWN_USER_HASH)


async def test_an_unknown_user_is_checked_against_the_stand_in_in_a_worker_thread() -> None:
    seen: list[tuple[str, str, int]] = []

    def verify(password: str, stored: str) -> bool:
        seen.append((password, stored, threading.get_ident()))
        return True  # even a check that passes cannot sign in someone who does not exist

    assert await check_password("guess", None, verify=verify) is False
    assert seen == [("guess", UNKNOWN_USER_HASH, seen[0][2])] and seen[0][2] != threading.get_ident()


async def test_hashing_a_new_password_runs_in_a_worker_thread(derivations) -> None:
    stored = await hash_password("a long enough password")
    assert verify_secret("a long enough password", stored)
    assert derivations[0] != threading.get_ident()


async def test_every_wrong_sign_in_makes_one_scrypt_check_off_the_event_loop(service, derivations) -> None:
    real, disabled = await staff_user(service), await staff_user(service)
    async with service.pool.acquire() as conn:
        await disable_user(conn, disabled)
    pages, counts = [], []
    for name in (real, "nobody-" + secrets.token_hex(3), disabled):
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
            derivations.clear()
            async with await sign_in(browser, service, {"username": name, "password": PASSWORD + "?"}) as resp:
                pages.append(re.sub(r'value="[^"]*"', "", await resp.text()))  # the form's CSRF and next
            counts.append(len(derivations))
            assert threading.get_ident() not in derivations
    assert counts == [1, 1, 1]
    assert pages[0] == pages[1] == pages[2]  # the same answer, word for word
