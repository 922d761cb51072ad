"""Receipts back into the ledger (issue 17, item 4), and ``ivr subscriptions`` / ``ivr tokens`` for them."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from collections.abc import AsyncIterator
from urllib.parse import quote

import asyncpg
import pytest
from aiohttp.test_utils import unused_port
from click.testing import CliRunner

from ivr import appkeys
from ivr.cli import main
from storage.tokens import create_token
from tests.conftest import Service, Storage, running_service
from tests.event_receiver import QUICK_DELIVERY, Receiver, event_receiver
from tests.helpers import api, run_verify_py, token_for, verify
from tests.test_event_deliveries import revoke_by_phone, until


@pytest.fixture
async def quick(own_storage: Storage) -> AsyncIterator[Service]:
    # A database of its own: other tests' subscriptions would be owed (and slow) its events.
    async with running_service(own_storage, unused_port(), **QUICK_DELIVERY) as running:
        yield running


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with event_receiver() as receiving:
        yield receiving


async def subscription_with_token(service: Service, url: str, types: list[str], name: str) -> tuple[int, str]:
    async with service.pool.acquire() as conn:
        sub = await conn.fetchval(
            "SELECT create_subscription($1, $2, $3::text[], 'v1', 'whsec_AAAA')", name, url, types
        )
        _, secret = await create_token(conn, f"{name}-receiver", "integration", sub)
    return sub, secret


async def test_a_revocation_s_evidence_shows_received_told_and_applied(
    quick, http, receiver, own_storage, tmp_path
) -> None:
    crm, crm_token = await subscription_with_token(quick, receiver.url, ["consent.revoked"], "crm")
    other, other_token = await subscription_with_token(quick, receiver.url, ["request.opened"], "other")
    try:
        caller = await revoke_by_phone(quick.base_url, http)
        await receiver.wait_for(1, "consent.revoked", caller)
        event_id = receiver.of_type("consent.revoked", caller)[0].headers["webhook-id"]
        applied = f"{quick.base_url}/api/events/{event_id}/applied"

        status, _ = await api(http, "POST", applied, other_token, {"detail": "not mine"})
        assert status == 404  # another subscription's event
        staff = await token_for(quick, "staff", "receipts-staff")
        status, _ = await api(http, "POST", applied, staff)
        assert status == 403  # only integration tokens say they applied something
        status, body = await api(http, "POST", applied, crm_token, {"detail": "dialer list updated"})
        assert (status, body["recorded"], body["subscription_id"]) == (201, True, crm)
        status, body = await api(http, "POST", applied, crm_token)
        assert (status, body["recorded"]) == (200, False)  # said once is enough

        async def delivered() -> bool:
            _, trail = await api(http, "GET", f"{quick.base_url}/api/events/{event_id}", staff)
            return bool(trail["deliveries"])

        await until(delivered)
        _, trail = await api(http, "GET", f"{quick.base_url}/api/events/{event_id}", staff)
        assert trail["event"]["data"]["subject"] == caller
        [told] = trail["deliveries"]
        [done] = trail["applications"]
        decision_seq = trail["event"]["data"]["ledger"]["seq"]
        assert (told["subscription_name"], told["http_status"]) == ("crm", 200)
        assert (done["subscription_name"], done["detail"]) == ("crm", "dialer list updated")
        # Received (the call's decision), told (delivered at), applied (when): chained in that order.
        assert decision_seq < told["ledger_seq"] < done["ledger_seq"]
        assert told["delivered_at"] <= done["applied_at"]
        _, listed = await api(http, "GET", f"{quick.base_url}/api/events?subject={quote(caller)}", staff)
        assert [e["id"] for e in listed["events"]] == [event_id]
        # The call's own evidence (its story, the bundle's evidence.json) shows them too, checked.
        call_sid = trail["event"]["data"]["call_sid"]
        _, story = await api(http, "GET", f"{quick.base_url}/api/calls/{call_sid}/evidence", staff)
        assert [r["row"]["subscription_id"] for r in story["told"]] == [crm]
        assert [r["row"]["detail"] for r in story["applied"]] == ["dialer list updated"]
        assert story["chain_check"]["intact"]
        decided = story["decisions"][0]["ledger"]["seq"]
        assert decided < story["told"][0]["ledger"]["seq"] < story["applied"][0]["ledger"]["seq"]
        async with http.get(
            f"{quick.base_url}/api/calls/{call_sid}/evidence.zip", headers={"Authorization": f"Bearer {staff}"}
        ) as resp:
            assert resp.status == 200
            zipfile.ZipFile(io.BytesIO(await resp.read())).extractall(tmp_path / "bundle")
        proofs = json.loads((tmp_path / "bundle" / "proofs.json").read_text())
        assert {"event_deliveries", "event_applications"} <= {e["kind"] for e in proofs["entries"]}
        code, out = await run_verify_py(
            tmp_path / "bundle", "--public-key", quick.app[appkeys.CHECKPOINT_SIGNER].public_key
        )
        assert code == 0, out  # an auditor's offline check covers who was told and who applied it
    finally:
        async with quick.pool.acquire() as conn:
            for sub in (crm, other):
                await conn.fetchval("SELECT remove_subscription($1)", sub)
    report = await verify(own_storage)
    assert report.intact, report.breaks[:3]


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO subscriptions (name, url, event_types, scheme, secret, starts_after) "
        "VALUES ('x', 'https://x.example', ARRAY['consent.revoked'], 'v1', 'whsec_AAAA', 0)",
        "UPDATE subscriptions SET url = 'https://attacker.example'",
        "UPDATE event_deliveries SET http_status = 200",
        "DELETE FROM event_applications",
        "UPDATE api_tokens SET subscription_id = NULL",
    ],
)
async def test_the_service_cannot_rewrite_subscriptions_receipts_or_scopes(quick, statement: str) -> None:
    async with quick.pool.acquire() as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(statement)


async def test_an_integration_token_needs_a_subscription_and_others_may_not_have_one(quick) -> None:
    async with quick.pool.acquire() as conn:
        with pytest.raises(asyncpg.CheckViolationError):
            await create_token(conn, "lost", "integration")
        sub = await conn.fetchval(
            "SELECT create_subscription('s', 'https://x.example', ARRAY['consent.revoked'], 'v1', 'whsec_AAAA')"
        )
        with pytest.raises(asyncpg.CheckViolationError):
            await create_token(conn, "staff-with-scope", "staff", sub)
        await conn.fetchval("SELECT remove_subscription($1)", sub)


def test_ivr_subscriptions_from_add_to_remove(storage: Storage, tmp_path) -> None:
    env = {
        "DATABASE_URL": storage.database_url,
        "IVR_DATA_DIR": str(tmp_path),
        "EVENT_ALLOW_PRIVATE_TARGETS": "",
    }
    cli = CliRunner()
    refused = cli.invoke(main, ["subscriptions", "add", "--url", "http://127.0.0.1:9/x", "--events", "*"], env=env)
    assert refused.exit_code == 2 and "https" in refused.output
    bad = cli.invoke(main, ["subscriptions", "add", "--url", "https://8.8.8.8/x", "--events", "consent.maybe"], env=env)
    assert bad.exit_code == 2 and "consent.revoked" in bad.output

    env["EVENT_ALLOW_PRIVATE_TARGETS"] = "true"
    added = cli.invoke(
        main,
        ["subscriptions", "add", "--url", "http://127.0.0.1:9/x", "--events", "consent.revoked,request.opened"],
        env=env,
    )
    assert added.exit_code == 0, added.output
    sub_id, secret = added.stdout.split()
    assert secret.startswith("whsec_")
    listed = cli.invoke(main, ["subscriptions", "list"], env=env)
    [line] = [row for row in listed.stdout.splitlines() if row.startswith(f"#{sub_id} ")]
    assert "active" in line and "consent.revoked,request.opened" in line and "dead 0" in line
    assert secret not in listed.stdout

    token = cli.invoke(
        main, ["tokens", "create", "--role", "integration", "--name", "crm", "--subscription", sub_id], env=env
    )
    assert token.exit_code == 0 and token.stdout.startswith("ivr_")
    unscoped = cli.invoke(main, ["tokens", "create", "--role", "integration", "--name", "crm"], env=env)
    assert unscoped.exit_code == 2

    assert cli.invoke(main, ["subscriptions", "disable", sub_id], env=env).exit_code == 0
    assert "disabled" in cli.invoke(main, ["subscriptions", "list"], env=env).stdout
    assert cli.invoke(main, ["subscriptions", "disable", sub_id], env=env).exit_code == 1
    assert cli.invoke(main, ["subscriptions", "enable", sub_id], env=env).exit_code == 0
    rotated = cli.invoke(main, ["subscriptions", "rotate-secret", sub_id], env=env)
    assert rotated.exit_code == 0 and rotated.stdout.strip().startswith("whsec_") and rotated.stdout.strip() != secret
    ed = cli.invoke(
        main, ["subscriptions", "add", "--url", "http://127.0.0.1:9/y", "--events", "*", "--ed25519"], env=env
    )
    ed_id, public = ed.stdout.split()
    assert public.startswith("whpk_")
    for removed in (sub_id, ed_id):
        assert cli.invoke(main, ["subscriptions", "remove", removed], env=env).exit_code == 0
    assert cli.invoke(main, ["subscriptions", "remove", sub_id], env=env).exit_code == 1
    assert f"#{sub_id} " not in cli.invoke(main, ["subscriptions", "list"], env=env).stdout
    asyncio.run(_no_secret_kept(storage.database_url, int(sub_id)))


async def _no_secret_kept(dsn: str, sub_id: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow("SELECT secret, previous_secret, removed_at FROM subscriptions WHERE id = $1", sub_id)
    finally:
        await conn.close()
    assert row["secret"] is None and row["previous_secret"] is None and row["removed_at"] is not None
