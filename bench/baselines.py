"""Tiny servers to compare the service against (run one per process):

python bench/baselines.py a PORT            constant TwiML of the same size
python bench/baselines.py c PORT REDIS_URL  + one pipelined redis-py round trip
python bench/baselines.py d PORT REDIS_URL DSN  + one asyncpg single-row INSERT commit
"""

from __future__ import annotations

import sys

import asyncpg
from aiohttp import web
from redis.asyncio import BlockingConnectionPool, Redis

# About the size of the consent line's answers (a Gather with two Says and a Redirect).
TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Gather action="http://127.0.0.1:8080/twilio/answer?seq=1" '
    'finishOnKey="" input="dtmf" method="POST" numDigits="1" timeout="6"><Say language="en-US">'
    + "To allow the use of your account information for marketing, press 1. To restrict it, press 2. " * 3
    + '</Say></Gather><Redirect method="POST">http://127.0.0.1:8080/twilio/no-input?seq=1</Redirect></Response>'
)


def build(kind: str, redis_url: str | None, dsn: str | None) -> web.Application:
    app = web.Application()
    state: dict[str, object] = {}

    async def resources(app: web.Application):
        if redis_url:  # a pool that waits for a connection, as the service's does
            state["redis"] = Redis.from_pool(BlockingConnectionPool.from_url(redis_url, max_connections=100, timeout=4))
        if dsn:
            state["pool"] = await asyncpg.create_pool(dsn, min_size=4, max_size=10)  # the service's own size
            async with state["pool"].acquire() as conn:  # type: ignore[attr-defined]
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS bench_rows"
                    " (id bigserial PRIMARY KEY, call_sid text, at timestamptz DEFAULT now())"
                )
        yield
        if "redis" in state:
            await state["redis"].aclose()  # type: ignore[attr-defined]
        if "pool" in state:
            await state["pool"].close()  # type: ignore[attr-defined]

    async def handle(request: web.Request) -> web.Response:
        form = await request.post()
        call_sid = str(form.get("CallSid", "CA0"))
        if kind in ("c", "d"):
            redis: Redis = state["redis"]  # type: ignore[assignment]
            async with redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(f"bench:{call_sid}")
                pipe.hset(f"bench:{call_sid}", "seq", "1")
                pipe.expire(f"bench:{call_sid}", 600)
                await pipe.execute()
        if kind == "d":
            pool: asyncpg.Pool = state["pool"]  # type: ignore[assignment]
            await pool.execute("INSERT INTO bench_rows (call_sid) VALUES ($1)", call_sid)
        return web.Response(text=TWIML, content_type="text/xml")

    app.cleanup_ctx.append(resources)
    app.router.add_post("/{tail:.*}", handle)
    return app


if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    web.run_app(
        build(kind, sys.argv[3] if len(sys.argv) > 3 else None, sys.argv[4] if len(sys.argv) > 4 else None),
        host="127.0.0.1",
        port=port,
        print=None,
        access_log=None,
    )
