"""Staff sign-in and the API are rate-limited per address and per token, across processes (Redis)."""

from __future__ import annotations

import secrets

import aiohttp
from aiohttp.test_utils import unused_port

from tests.conftest import running_service
from tests.helpers import token_for
from tests.test_staff_pages import sign_in


async def test_the_api_answers_429_with_retry_after_past_the_allowance(storage, http) -> None:
    async with running_service(
        storage, unused_port(), API_RATE_PER_MIN="5", RATE_LIMIT_NAMESPACE=secrets.token_hex(4)
    ) as service:
        staff = await token_for(service, "staff", "busy")
        statuses = []
        for _ in range(7):
            async with http.get(
                f"{service.base_url}/api/requests", headers={"Authorization": f"Bearer {staff}"}
            ) as resp:
                statuses.append(resp.status)
                retry_after = resp.headers.get("Retry-After")
    assert statuses[:5] == [200] * 5 and statuses[5:] == [429, 429]
    assert retry_after is not None and 1 <= int(retry_after) <= 60


async def test_guessing_tokens_is_limited_per_address_before_any_check(storage, http) -> None:
    async with running_service(
        storage, unused_port(), API_RATE_PER_MIN="3", RATE_LIMIT_NAMESPACE=secrets.token_hex(4)
    ) as service:
        statuses = []
        for n in range(5):
            async with http.get(
                f"{service.base_url}/api/requests", headers={"Authorization": f"Bearer guess-{n}"}
            ) as resp:
                statuses.append(resp.status)
    assert statuses == [401, 401, 401, 429, 429]


async def test_sign_in_attempts_are_limited(storage) -> None:
    async with running_service(
        storage, unused_port(), LOGIN_RATE_PER_MIN="3", RATE_LIMIT_NAMESPACE=secrets.token_hex(4)
    ) as service:
        statuses = []
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
            for _ in range(5):
                form = {"username": "nobody-here", "password": "wrong password"}
                async with await sign_in(browser, service, form) as resp:
                    statuses.append(resp.status)
    assert statuses == [200, 200, 200, 429, 429]
