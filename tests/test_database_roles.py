"""The service's database login adds evidence and can escalate nothing (issue 15, attack 4).

Each escalation an attacker holding the service's credentials tried is retried here, as
that login, and must be refused by the database itself.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from aiohttp.test_utils import unused_port
from click.testing import CliRunner

from ivr.cli import main
from storage.ledger import GENESIS
from storage.postgres import RoleTooStrong, as_service_role, connect
from storage.tokens import create_token, find_token
from tests.conftest import Storage, running_service
from tests.helpers import make_calls

REFUSED = (asyncpg.InsufficientPrivilegeError, asyncpg.UndefinedFunctionError)


async def _as_service(storage: Storage) -> asyncpg.Connection:
    return await connect(as_service_role(storage.database_url))


async def test_the_service_logs_in_as_its_own_role_and_cannot_reset_to_the_owner(own_storage, http) -> None:
    async with running_service(own_storage, unused_port()) as service:
        async with service.pool.acquire() as conn:
            await conn.execute("RESET ROLE")  # nothing to reset to: the login is the role
            assert await conn.fetchval("SELECT session_user || '/' || current_user") == "ivr_app/ivr_app"
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("SET ROLE postgres")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE api_tokens SET role = 'admin'",
        "UPDATE api_tokens SET revoked_at = NULL",
        "INSERT INTO api_tokens (name, role, token_hash) VALUES ('mine', 'admin', repeat('a', 64))",
        "DELETE FROM api_tokens",
        "UPDATE staff_users SET role = 'admin'",
        "INSERT INTO staff_users (username, role, password_hash) VALUES ('mallory', 'admin', 'x')",
        "UPDATE customer_phones SET phone = '+14155550000'",
        "INSERT INTO customers (account_number, name) VALUES ('999', 'Mallory')",
        "INSERT INTO retention_runs (actor, reason, periods, rows_removed, removed_digest) "
        "VALUES ('me', 'why not', '{}', 0, repeat('0', 64))",
        "INSERT INTO ledger (seq, kind, ref_id, prev_hash, hash) "
        "VALUES (999, 'x', 1, repeat('0', 64), repeat('1', 64))",
        "SELECT ledger_append(ARRAY['keypresses'], ARRAY[1::bigint], ARRAY['any text I like'])",
        "UPDATE consent_events SET action = 'grant'",
    ],
)
async def test_each_escalation_is_refused_to_the_service_login(own_storage, http, statement: str) -> None:
    await make_calls(own_storage, http, count=1)
    owner = await connect(own_storage.database_url)
    try:
        await create_token(owner, "an agent", "agent")
        await owner.execute("SELECT create_staff_user('dora', 'staff', 'x')")
    finally:
        await owner.close()
    conn = await _as_service(own_storage)
    try:
        with pytest.raises(REFUSED):
            await conn.execute(statement)
    finally:
        await conn.close()


async def test_the_retention_switch_does_not_open_deletion_to_the_service(own_storage, http) -> None:
    await make_calls(own_storage, http, count=1)
    conn = await _as_service(own_storage)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL ivr.retention_run = 'on'")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("DELETE FROM consent_events")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM ledger WHERE seq > 1")
    finally:
        await conn.close()
    owner = await connect(own_storage.database_url)
    try:  # the owner outside a retention run is refused by the trigger, whatever its rights
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await owner.execute("DELETE FROM ledger WHERE seq > 1")
    finally:
        await owner.close()


async def test_chaining_takes_the_content_from_the_row_and_only_once(own_storage, http) -> None:
    await make_calls(own_storage, http, count=1)
    conn = await _as_service(own_storage)
    try:
        chained_id = await conn.fetchval("SELECT ref_id FROM ledger WHERE kind = 'keypresses' LIMIT 1")
        with pytest.raises(asyncpg.UniqueViolationError):  # already chained: not a second time
            await conn.execute("SELECT ledger_append(ARRAY['keypresses'], ARRAY[$1::bigint])", chained_id)
        with pytest.raises(asyncpg.RaiseError, match="not an evidence table"):
            await conn.execute("SELECT ledger_append(ARRAY['api_tokens'], ARRAY[1::bigint])")
        with pytest.raises(asyncpg.RaiseError, match="does not exist"):
            await conn.execute("SELECT ledger_append(ARRAY['keypresses'], ARRAY[987654321::bigint])")
        assert await conn.fetchval("SELECT count(*) FROM ledger WHERE prev_hash = $1", GENESIS) == 1
    finally:
        await conn.close()


async def test_tokens_are_created_and_revoked_through_functions_and_a_revocation_stands(own_storage) -> None:
    async with running_service(own_storage, unused_port()):
        pass  # migrated
    conn = await _as_service(own_storage)
    owner = await connect(own_storage.database_url)
    try:
        token, secret = await create_token(conn, "agent smith", "agent")
        assert (await find_token(conn, secret)).role == "agent"
        assert await conn.fetchval("SELECT revoke_api_token($1)", token.id) is True
        assert await conn.fetchval("SELECT revoke_api_token($1)", token.id) is False
        assert await find_token(conn, secret) is None
        for undo in ("UPDATE api_tokens SET revoked_at = NULL", "UPDATE api_tokens SET role = 'admin'"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):  # not even the owner
                await owner.execute(undo)
        await owner.execute("SELECT create_staff_user('eve', 'staff', 'x')")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await owner.execute("UPDATE staff_users SET role = 'admin' WHERE username = 'eve'")
        assert await conn.fetchval("SELECT disable_staff_user('eve')") is True
    finally:
        await conn.close()
        await owner.close()


async def test_the_service_will_not_serve_with_the_owner_login(own_storage) -> None:
    with pytest.raises(RoleTooStrong, match="can rewrite evidence"):
        async with running_service(
            own_storage, unused_port(), MIGRATION_DATABASE_URL=own_storage.database_url
        ):  # DATABASE_URL is the owner too
            pass
    env = {"DATABASE_URL": own_storage.database_url, "MIGRATION_DATABASE_URL": own_storage.database_url}
    result = await asyncio.to_thread(CliRunner().invoke, main, ["consent", "+14155550100"], env=env)
    assert result.exit_code == 2
    assert "can rewrite evidence" in result.output
    assert "Traceback" not in result.output
