"""Behind a trusted proxy the client's own address counts: rate limits and the access log."""

from __future__ import annotations

import ipaddress
import secrets

from aiohttp.test_utils import unused_port

from ivr.access.proxies import client_address
from tests.conftest import running_service
from tests.helpers import token_for

PROXIES = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32")]


def test_the_client_is_the_nearest_hop_that_is_not_our_proxy() -> None:
    assert client_address("10.0.0.5", "203.0.113.7", PROXIES) == "203.0.113.7"
    # A client may claim anything on the left; only what our proxies appended counts.
    assert client_address("10.0.0.5", "1.2.3.4, 203.0.113.7, 10.0.0.9", PROXIES) == "203.0.113.7"
    assert client_address("10.0.0.5", "garbage", PROXIES) == "10.0.0.5"
    assert client_address("10.0.0.5", "", PROXIES) == "10.0.0.5"
    # Not from a trusted proxy: the header is somebody's say-so, ignored.
    assert client_address("198.51.100.2", "203.0.113.7", PROXIES) == "198.51.100.2"
    assert client_address("10.0.0.5", "203.0.113.7", []) == "10.0.0.5"


async def test_behind_the_proxy_each_client_has_its_own_allowance_and_is_logged(storage, http) -> None:
    async with running_service(
        storage,
        unused_port(),
        API_RATE_PER_MIN="3",
        RATE_LIMIT_NAMESPACE=secrets.token_hex(4),
        TRUSTED_PROXIES="127.0.0.1",
    ) as service:
        # A token of each client's own: the allowance is per token as well as per address.
        tokens = {n: await token_for(service, "staff", f"behind-proxy-{n}") for n in (7, 8, 9)}

        async def get(client: str, path: str = "/api/requests") -> int:
            token = tokens[int(client.rsplit(".", 1)[1])]
            headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": client}
            async with http.get(f"{service.base_url}{path}", headers=headers) as resp:
                return resp.status

        first = [await get("203.0.113.7") for _ in range(4)]
        second = [await get("203.0.113.8") for _ in range(2)]
        phone = "+14155550142"
        await get("203.0.113.9", f"/api/subjects/{phone}/consents?reason=complaint-1234")
        async with service.pool.acquire() as conn:
            logged = await conn.fetchval("SELECT remote FROM access_log WHERE target = $1 ORDER BY id DESC", phone)

    assert first == [200, 200, 200, 429]  # one client's allowance...
    assert second == [200, 200]  # ...is not another's
    assert str(logged) == "203.0.113.9"
