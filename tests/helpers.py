"""Shared steps for the tests."""

from __future__ import annotations

import asyncio
import sys

import aiohttp
from aiohttp.test_utils import unused_port

from ivr import appkeys
from storage.customers import Customer, upsert_customer
from storage.postgres import connect
from storage.tokens import create_token
from storage.verify import Report, verify_ledger
from tests.conftest import AUTH_TOKEN, Service, Storage, running_service
from tests.fake_twilio import FakeCall, FakeTwilio


async def make_calls(storage: Storage, http, count: int = 3) -> list[str]:
    async with running_service(storage, unused_port()) as running:
        twilio = FakeTwilio(http, running.base_url, AUTH_TOKEN)
        sids = []
        for _ in range(count):
            call = twilio.call()
            await call.dial()
            await call.keys("2", "2", "1")
            await call.hang_up()
            sids.append(call.call_sid)
    return sids


async def tamper(storage: Storage, *statements: str) -> None:
    """As the tables' owner, with the append-only triggers switched off: what an insider could do."""
    owner = await connect(storage.database_url)
    try:
        async with owner.transaction():
            for table in ("consent_events", "keypresses", "ledger", "calls"):
                await owner.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            for statement in statements:
                await owner.execute(statement)
            for table in ("consent_events", "keypresses", "ledger", "calls"):
                await owner.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
    finally:
        await owner.close()


async def verify(storage: Storage, since_head: str | None = None) -> Report:
    conn = await connect(storage.database_url)
    try:
        return await verify_ledger(conn, since_head=since_head)
    finally:
        await conn.close()


async def store_customer(service: Service, known: Customer) -> Customer:
    """Put ``known`` in the directory as ``ivr customers import`` does: as the tables' owner."""
    conn = await connect(service.app[appkeys.OWNER_DSN])
    try:
        await upsert_customer(conn, known)
    finally:
        await conn.close()
    return known


async def token_for(desk: Service, role: str, name: str) -> str:
    async with desk.pool.acquire() as conn:
        _, secret = await create_token(conn, name, role)
    return secret


async def api(http: aiohttp.ClientSession, method: str, url: str, token: str | None, body: dict | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, url, json=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def a_caller_on_a_call(phone: FakeTwilio) -> FakeCall:
    """A customer who rang the consent line and pressed 0 for an agent: now talking to them."""
    call = phone.call()
    await call.dial()
    await call.press("0")
    return call


async def twilio_follows(phone: FakeTwilio, call: FakeCall, redirect_url: str):
    """What Twilio does after the REST update: fetch the new TwiML for the live call."""
    answer = await phone.post(redirect_url, call.params())
    call.current = answer
    return answer


async def wait_ready(http: aiohttp.ClientSession, url: str, proc=None, within_s: float = 60) -> None:
    """Until ``url``/readyz answers 200 (or ``proc``, if given, exits first)."""
    for _ in range(int(within_s * 10)):
        if proc is not None and proc.returncode is not None:
            raise AssertionError(f"the server exited early with {proc.returncode}")
        try:
            async with http.get(url + "/readyz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never became ready")


async def spawn_ivr(*args: str, env: dict[str, str], quiet: bool = False) -> asyncio.subprocess.Process:
    """``python -m ivr ARGS`` in its own process (output captured unless ``quiet``)."""
    out = asyncio.subprocess.DEVNULL if quiet else asyncio.subprocess.PIPE
    err = asyncio.subprocess.DEVNULL if quiet else asyncio.subprocess.STDOUT
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "ivr", *args, env=env, stdout=out, stderr=err)


async def run_verify_py(folder, *args: str) -> tuple[int, str]:
    """``python3 verify.py …`` in ``folder``, as an auditor runs it: isolated, no site-packages."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-I", "-S", "verify.py", *args,
        cwd=folder, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()
