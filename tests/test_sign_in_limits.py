"""Sign-in limits that cannot be turned against others (issue 16, finding 4).

Tries are counted per client address, and wrong passwords slow one username from one
address with a doubling wait: a flood from one address, or guesses at one user from one
address, refuse nobody elsewhere. Addresses come through the trusted proxy's
X-Forwarded-For, as behind nginx.
"""

from __future__ import annotations

import asyncio
import secrets

import aiohttp
from aiohttp.test_utils import unused_port
from redis.asyncio import Redis

from ivr import appkeys
from ivr.staff.sign_in_limits import address_bucket
from storage.rate_limits import FAILURE_MEMORY_S, RateLimiter
from tests.conftest import Service, running_service
from tests.helpers import token_for
from tests.test_staff_pages import PASSWORD, sign_in, staff_user

ATTACKER, COLLEAGUE = "203.0.113.66", "198.51.100.7"


async def try_sign_in(service: Service, form: dict[str, str], address: str) -> tuple[int, str | None, str]:
    """One sign-in from ``address``: the status, Retry-After and the page (redirects not followed)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        posted = await sign_in(browser, service, form, headers={"X-Forwarded-For": address}, allow_redirects=False)
        async with posted as resp:
            return resp.status, resp.headers.get("Retry-After"), await resp.text()


def throttled(service: Service, reason: str) -> float:
    value = service.app[appkeys.METRICS].registry.get_sample_value("ivr_sign_in_throttled_total", {"reason": reason})
    return value or 0.0


async def test_a_flood_of_bad_tokens_from_one_address_does_not_stop_a_good_token_from_another(storage, http) -> None:
    async with running_service(storage, unused_port(), LOGIN_RATE_PER_MIN="3", TRUSTED_PROXIES="127.0.0.1") as service:
        good = await token_for(service, "staff", "colleague")
        flood = [await try_sign_in(service, {"token": f"ivr_guess{n}"}, ATTACKER) for n in range(5)]
        theirs = await try_sign_in(service, {"token": good}, COLLEAGUE)
        attackers_own = await try_sign_in(service, {"token": good}, ATTACKER)
        async with http.get(f"{service.base_url}/metrics") as resp:
            exposed = await resp.text()

    assert [status for status, _, _ in flood] == [200, 200, 200, 429, 429]
    assert all(1 <= int(retry or 0) <= 60 for status, retry, _ in flood if status == 429)
    assert "Too many sign-in attempts" in flood[-1][2]  # the form again, saying why
    assert theirs[0] == 303  # signed in: another address has its own allowance
    assert attackers_own[0] == 429  # the flooding address is the one held back
    assert throttled(service, "address_rate") == 3
    assert 'ivr_sign_in_throttled_total{reason="address_rate"} 3.0' in exposed
    assert 'ivr_sign_in_failures_total{method="token"} 3.0' in exposed


async def test_wrong_passwords_from_one_address_slow_that_address_and_not_the_user_elsewhere(storage) -> None:
    async with running_service(storage, unused_port(), LOGIN_FREE_FAILURES="1", TRUSTED_PROXIES="127.0.0.1") as service:
        name = await staff_user(service)
        wrong, right = {"username": name, "password": "not the password"}, {"username": name, "password": PASSWORD}
        free = await try_sign_in(service, wrong, ATTACKER)
        slowed = await try_sign_in(service, wrong, ATTACKER)  # past the free one: 1 s to wait
        refused = await try_sign_in(service, right, ATTACKER)  # even the right password waits
        elsewhere = await try_sign_in(service, right, COLLEAGUE)
        await asyncio.sleep(int(refused[1] or 0) + 0.1)
        doubled = await try_sign_in(service, wrong, ATTACKER)  # after the wait: tried, and 2 s now
        refused_again = await try_sign_in(service, wrong, ATTACKER)
        other_user = await try_sign_in(service, {"username": await staff_user(service), "password": PASSWORD}, ATTACKER)

    assert free[0] == 200 and "did not sign you in" in free[2] and "Wait" not in free[2]
    assert slowed[0] == 200 and "Wait 1 s before trying again" in slowed[2]
    assert refused[:2] == (429, "1")
    assert elsewhere[0] == 303  # the same user, from another address: signed in
    assert doubled[0] == 200 and "Wait 2 s before trying again" in doubled[2]
    assert refused_again[0] == 429 and refused_again[1] in ("1", "2")
    assert other_user[0] == 303  # one username's wait holds back no other username
    assert throttled(service, "user_delay") == 2


async def test_an_unknown_username_is_slowed_as_a_real_one_is(storage) -> None:
    async with running_service(storage, unused_port(), LOGIN_FREE_FAILURES="0", TRUSTED_PROXIES="127.0.0.1") as service:
        real = await try_sign_in(service, {"username": await staff_user(service), "password": "x"}, ATTACKER)
        unknown = await try_sign_in(service, {"username": "nobody-" + secrets.token_hex(3), "password": "x"}, ATTACKER)
    assert real[0] == unknown[0] == 200
    assert "Wait 1 s before trying again" in real[2] and "Wait 1 s before trying again" in unknown[2]


async def test_failures_double_the_wait_up_to_the_cap_and_a_success_forgets_them(storage) -> None:
    redis = Redis.from_url(storage.redis_url, decode_responses=True)
    try:
        namespace = secrets.token_hex(4)
        limits = RateLimiter(redis, namespace)
        waits = [await limits.note_failure("login", "a|ada", free=2, max_delay_s=8) for _ in range(7)]
        assert waits == [None, None, 1, 2, 4, 8, 8]
        assert await limits.delay_left("login", "a|ada") == 8
        assert await limits.delay_left("login", "b|ada") is None  # another address: no wait
        assert 0 < await redis.ttl(f"ivr:rate:{namespace}:login:failures:a|ada") <= FAILURE_MEMORY_S
        await limits.forget_failures("login", "a|ada")
        assert await limits.delay_left("login", "a|ada") is None
        assert await limits.note_failure("login", "a|ada", free=2, max_delay_s=8) is None  # counting afresh
    finally:
        await redis.aclose()


def test_an_ipv6_client_is_counted_by_its_64() -> None:
    assert address_bucket("2001:db8:1:2:aaaa::1") == address_bucket("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert address_bucket("2001:db8:1:3::1") != address_bucket("2001:db8:1:2::1")
    assert address_bucket("203.0.113.66") == "203.0.113.66"
    assert address_bucket(None) == address_bucket("not an address") == "?"
