"""Liveness and readiness answer for the real dependencies."""

from __future__ import annotations


async def test_healthz_says_the_process_is_up(service, http) -> None:
    async with http.get(service.base_url + "/healthz") as resp:
        assert resp.status == 200
        body = await resp.json()
        assert body["status"] == "ok" and len(body["worker"]) == 8 and "pid" not in body


async def test_readyz_checks_postgres_and_redis(service, http) -> None:
    async with http.get(service.base_url + "/readyz") as resp:
        assert resp.status == 200
        assert (await resp.json())["checks"] == {"postgres": "ok", "redis": "ok"}


async def test_readyz_is_503_when_postgres_is_gone(service, http) -> None:
    await service.pool.close()

    async with http.get(service.base_url + "/readyz") as resp:
        body = await resp.json()

    assert resp.status == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"] == "ok"
    assert body["checks"]["postgres"].startswith("error")
