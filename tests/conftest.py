"""Real servers for the tests, and the service built through its factory.

Storage comes from ``IVR_TEST_DATABASE_URL`` / ``IVR_TEST_REDIS_URL`` when set (CI
points them at the machine's Postgres and Redis; a fresh database is created for the
run and dropped after), otherwise from the embedded servers a fresh laptop gets. Tests
never share call identities, so nothing needs truncating (the ledger forbids it anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import unused_port

from ivr import appkeys
from ivr.access.passwords import hash_secret
from ivr.app import create_app
from ivr.ops.logs import AccessLog, configure_logging
from ivr.ops.security_headers import LINGERING_TIME_S
from ivr.settings import Settings
from storage.customers import Customer, upsert_customer
from storage.embedded import embedded_postgres, embedded_redis
from tests.fake_twilio import ACCOUNT_SID, FakeTwilio, new_caller
from tests.fake_twilio_rest import FakeTwilioRest, fake_twilio_rest

AUTH_TOKEN = "test-auth-token-" + secrets.token_hex(8)


def pytest_configure(config: pytest.Config) -> None:
    """Log as production does (JSON, numbers masked), so every test exercises the masking."""
    configure_logging("INFO", "json")


CUSTOMER_PIN = "48317"


@dataclass(frozen=True)
class Storage:
    database_url: str
    redis_url: str


def with_database(dsn: str, name: str) -> str:
    """The same server DSN, naming database ``name``."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


async def _admin(dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextlib.contextmanager
def fresh_database(server_dsn: str) -> Iterator[str]:
    name = "ivr_test_" + secrets.token_hex(6)
    asyncio.run(_admin(server_dsn, f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(server_dsn, name)
    finally:
        asyncio.run(_admin(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Storage]:
    data_dir = tmp_path_factory.mktemp("embedded")
    with contextlib.ExitStack() as stack:
        server_dsn = os.environ.get("IVR_TEST_DATABASE_URL") or stack.enter_context(embedded_postgres(data_dir))
        database_url = stack.enter_context(fresh_database(server_dsn))
        redis_url = os.environ.get("IVR_TEST_REDIS_URL") or stack.enter_context(embedded_redis(data_dir))
        yield Storage(database_url, redis_url)


def service_settings(storage: Storage, port: int, **overrides: str) -> Settings:
    env = {
        "DATABASE_URL": storage.database_url,
        "REDIS_URL": storage.redis_url,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "IVR_DATA_DIR": str(Path("var-tests")),
        # Every test calls from 127.0.0.1: only the rate-limit tests meet the limits.
        "API_RATE_PER_MIN": "100000",
        "LOGIN_RATE_PER_MIN": "100000",
        "RATE_LIMIT_NAMESPACE": secrets.token_hex(4),
    }
    return Settings.from_env(env | overrides)


@dataclass
class Service:
    """The service running on loopback, with handles on its real resources."""

    app: web.Application
    base_url: str

    @property
    def pool(self) -> asyncpg.Pool:
        return self.app[appkeys.PG_POOL]


@contextlib.asynccontextmanager
async def running_service(storage: Storage, port: int, **overrides: str) -> AsyncIterator[Service]:
    """The service built by its factory, listening on loopback ``port`` until the block ends."""
    app = create_app(service_settings(storage, port, **overrides))
    runner = web.AppRunner(app, lingering_time=LINGERING_TIME_S, access_log_class=AccessLog)  # as `ivr serve` does
    try:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        yield Service(app, f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


@pytest.fixture
async def service(storage: Storage) -> AsyncIterator[Service]:
    async with running_service(storage, unused_port()) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def twilio(service: Service, http: aiohttp.ClientSession) -> FakeTwilio:
    return FakeTwilio(http, service.base_url, AUTH_TOKEN)


@pytest.fixture
async def customer(storage: Storage) -> Customer:
    """A customer with a PIN (``CUSTOMER_PIN``) and a phone number of their own."""
    account = str(secrets.randbelow(10**9) + 10**9)
    known = Customer(account, "Ada Lovelace", hash_secret(CUSTOMER_PIN), (new_caller(),))
    conn = await asyncpg.connect(storage.database_url)
    try:
        await upsert_customer(conn, known)
    finally:
        await conn.close()
    return known


@pytest.fixture
async def db(service: Service) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the test's own, for looking at what the service stored."""
    async with service.pool.acquire() as conn:
        yield conn


@pytest.fixture
async def own_storage(storage: Storage) -> AsyncIterator[Storage]:
    """A database of this test's own: tampering with it cannot upset other tests."""
    name = "ivr_ledger_" + secrets.token_hex(4)
    await _admin(storage.database_url, f'CREATE DATABASE "{name}"')
    try:
        yield Storage(with_database(storage.database_url, name), storage.redis_url)
    finally:
        await _admin(storage.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def rest() -> AsyncIterator[FakeTwilioRest]:
    async with fake_twilio_rest(AUTH_TOKEN) as fake:
        yield fake


@pytest.fixture
async def desk(storage: Storage, rest: FakeTwilioRest) -> AsyncIterator[Service]:
    async with running_service(storage, unused_port(), TWILIO_API_BASE_URL=rest.url) as running:
        yield running


@pytest.fixture
def phone(desk: Service, http) -> FakeTwilio:
    return FakeTwilio(http, desk.base_url, AUTH_TOKEN)
