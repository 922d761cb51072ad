"""The staff API: every route's roles, lookups, bundles, requests, suppression, the access log."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import zipfile

import pytest

from ivr.access.roles import declared_roles
from ivr.api.openapi import OPENAPI
from ivr.app import routes_of
from storage.ledger import canonical_json, entry_hash
from tests.helpers import api, token_for

ROLES = ("agent", "staff", "admin")


def api_routes(app) -> list[tuple[str, str, object]]:
    found = []
    for route in routes_of(app):
        path = route.resource.canonical
        if path.startswith("/api/") and route.method != "HEAD":
            found.append((route.method, path, route.handler))
    return found


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda m: {"{phone}": "+14155550100"}.get(m.group(0), "CA" + "9" * 32), path)


def test_every_api_route_declares_its_roles_and_the_openapi_document_lists_them(service) -> None:
    routes = api_routes(service.app)
    assert routes and all(declared_roles(handler) for _, _, handler in routes)
    documented = {(method.upper(), path) for path, ops in OPENAPI["paths"].items() for method in ops}
    assert documented == {(method, path) for method, path, _ in routes}
    for method, path, handler in routes:
        assert OPENAPI["paths"][path][method.lower()]["x-roles"][0] in declared_roles(handler)


async def test_no_api_route_is_reachable_without_its_role(service, http) -> None:
    tokens = {role: await token_for(service, role, f"matrix-{role}") for role in ROLES}
    for method, path, handler in api_routes(service.app):
        url = service.base_url + concrete(path)
        allowed = declared_roles(handler)
        async with http.request(method, url) as resp:
            assert resp.status == 401, (method, path)
        for role in ROLES:
            async with http.request(method, url, headers={"Authorization": f"Bearer {tokens[role]}"}) as resp:
                if role in allowed or role == "admin":
                    assert resp.status not in (401, 403), (method, path, role, resp.status)
                else:
                    assert resp.status == 403, (method, path, role)


async def test_a_person_s_consents_answer_did_they_opt_out_and_when(service, twilio, http, db) -> None:
    staff = await token_for(service, "staff", "sam")
    call = twilio.call()
    await call.dial()
    await call.keys("2", "2", "1")
    national = call.caller.removeprefix("+1")
    status, body = await api(
        http, "GET", f"{service.base_url}/api/subjects/{national}/consents?reason=ticket-42", staff
    )

    assert status == 200 and body["phone"] == call.caller
    states = {s["purpose"]: s for s in body["consents"][call.caller]}
    decided = await db.fetchrow(
        "SELECT event_id, recorded_at, honor_by FROM consent_events WHERE call_sid = $1", call.call_sid
    )
    assert states["telemarketing"]["status"] == "revoked"
    assert states["telemarketing"]["event_id"] == str(decided["event_id"])
    assert states["telemarketing"]["honor_by"] == decided["honor_by"].isoformat()
    assert states["email"]["status"] == "never_asked"
    logged = await db.fetchrow("SELECT * FROM access_log WHERE target = $1 ORDER BY id DESC LIMIT 1", call.caller)
    assert (logged["actor"], logged["action"], logged["reason"]) == ("sam", "subject.consents", "ticket-42")


async def test_an_invalid_phone_number_gets_400(service, http) -> None:
    staff = await token_for(service, "staff", "sue")
    status, body = await api(http, "GET", f"{service.base_url}/api/subjects/12345/consents", staff)
    assert status == 400 and "not a valid phone number" in body["error"]
    status, _ = await api(http, "GET", f"{service.base_url}/api/consent-events?phone=nope", staff)
    assert status == 400


async def test_search_pages_stay_stable_while_decisions_keep_arriving(service, twilio, http) -> None:
    staff = await token_for(service, "staff", "tom")
    caller = "+14155550" + str(100 + (id(service) % 800))
    for _ in range(5):
        call = twilio.call(caller=caller)
        await call.dial()
        await call.keys("3", "1", "1")
    seen, cursor = [], None
    while True:
        url = f"{service.base_url}/api/consent-events?phone={caller}&limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, page = await api(http, "GET", url, staff)
        assert status == 200
        seen += [e["id"] for e in page["events"]]
        late = twilio.call(caller=caller)  # a new decision lands between pages
        await late.dial()
        await late.keys("4", "2", "1")
        cursor = page["next_cursor"]
        if cursor is None or len(seen) > 40:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen))
    assert len(seen) >= 5


async def test_a_call_s_evidence_tells_the_whole_story_and_checks_its_chain(service, twilio, http, db) -> None:
    staff = await token_for(service, "staff", "uma")
    call = twilio.call()
    await call.dial()
    await call.keys("1", "2", "1")
    await call.hang_up()
    status, story = await api(http, "GET", f"{service.base_url}/api/calls/{call.call_sid}/evidence", staff)

    assert status == 200
    assert [k["row"]["digits"] for k in story["keypresses"]] == ["1", "2", "1"]
    assert story["keypresses"][1]["row"]["prompt_text"].startswith("Your account information, called C P N I")
    assert story["decisions"][0]["row"]["action"] == "revoke"
    assert story["notices"][0]["row"]["notice"] == "cpni"
    assert story["endings"][0]["row"]["status"] == "completed"
    assert story["chain_check"]["intact"] and story["chain_check"]["records"] >= 7
    assert (await api(http, "GET", f"{service.base_url}/api/calls/CA{'0' * 32}/evidence", staff))[0] == 404


async def test_the_bundle_holds_story_receipts_proof_and_certification(service, twilio, http, db) -> None:
    staff = await token_for(service, "staff", "vic")
    call = twilio.call()
    await call.dial()
    await call.keys("2", "2", "1")
    async with http.get(
        f"{service.base_url}/api/calls/{call.call_sid}/evidence.zip", headers={"Authorization": f"Bearer {staff}"}
    ) as resp:
        assert resp.status == 200 and resp.content_type == "application/zip"
        archive = zipfile.ZipFile(io.BytesIO(await resp.read()))

    expected = {"evidence.json", "receipts.jsonl", "proofs.json", "checkpoint.json", "verify.py", "CERTIFICATION.txt"}
    assert expected <= set(archive.namelist())
    story = json.loads(archive.read("evidence.json"))
    proof = json.loads(archive.read("proofs.json"))
    for entry in proof["entries"]:
        stored = await db.fetchrow("SELECT hash, prev_hash FROM ledger WHERE seq = $1", entry["seq"])
        assert (stored["hash"], stored["prev_hash"]) == (entry["hash"], entry["prev_hash"])
    decision = story["decisions"][0]
    assert entry_hash(canonical_json(decision["row"]), decision["ledger"]["prev_hash"]) == decision["ledger"]["hash"]
    [receipt] = [json.loads(line) for line in archive.read("receipts.jsonl").decode().splitlines()]
    assert receipt["purposes"][0]["purpose"] == "telemarketing"
    assert call.call_sid in archive.read("CERTIFICATION.txt").decode()


async def test_requests_are_worked_by_appending_status_changes(service, twilio, http, db) -> None:
    staff = await token_for(service, "staff", "wes")
    call = twilio.call()
    await call.dial()
    await call.keys("8", "2")
    await call.stay_silent()
    request_id = await db.fetchval("SELECT id FROM requests WHERE call_sid = $1", call.call_sid)

    _, listed = await api(http, "GET", f"{service.base_url}/api/requests?status=open", staff)
    assert request_id in [r["id"] for r in listed["requests"]]
    status, _ = await api(
        http,
        "POST",
        f"{service.base_url}/api/requests/{request_id}/status",
        staff,
        {"status": "done", "note": "posts removed"},
    )
    assert status == 201
    _, done = await api(http, "GET", f"{service.base_url}/api/requests?status=done", staff)
    assert [(r["id"], r["note"], r["actor"]) for r in done["requests"] if r["id"] == request_id] == [
        (request_id, "posts removed", "wes")
    ]
    assert await db.fetchval("SELECT count(*) FROM request_events WHERE request_id = $1", request_id) == 1


async def test_the_suppression_list_feeds_dialers(service, twilio, http) -> None:
    staff = await token_for(service, "staff", "xia")
    call = twilio.call()
    await call.dial()
    await call.keys("2", "2", "1")
    _, listed = await api(http, "GET", f"{service.base_url}/api/suppression?purpose=telemarketing", staff)
    async with http.get(
        f"{service.base_url}/api/suppression?purpose=telemarketing&format=csv",
        headers={"Authorization": f"Bearer {staff}"},
    ) as resp:
        rows = list(csv.DictReader(io.StringIO(await resp.text())))

    assert call.caller in [n["phone"] for n in listed["numbers"]]
    assert call.caller in [r["phone"] for r in rows] and rows[0]["honor_by"]


async def test_only_admins_read_the_access_log_and_it_records_every_evidence_view(service, twilio, http) -> None:
    staff = await token_for(service, "staff", "yul")
    admin = await token_for(service, "admin", "zed")
    call = twilio.call()
    await call.dial()
    await asyncio.gather(
        api(http, "GET", f"{service.base_url}/api/calls/{call.call_sid}/evidence?reason=audit", staff),
        api(http, "GET", f"{service.base_url}/api/suppression", staff),
    )
    assert (await api(http, "GET", f"{service.base_url}/api/access-log", staff))[0] == 403
    status, log = await api(http, "GET", f"{service.base_url}/api/access-log?limit=50", admin)

    assert status == 200
    mine = [(e["action"], e["target"], e["reason"]) for e in log["entries"] if e["actor"] == "yul"]
    assert ("call.evidence", call.call_sid, "audit") in mine and ("suppression", "telemarketing", None) in mine
    # Reading the log is itself logged, before the read: the admin's look is in what they saw.
    assert ("access_log.read", "latest 50") in [
        (e["action"], e["target"]) for e in log["entries"] if e["actor"] == "zed"
    ]


@pytest.mark.parametrize("field", ["purpose", "phone", "action", "channel"])
async def test_sql_in_search_fields_is_just_text(service, http, field) -> None:
    staff = await token_for(service, "staff", "sql")
    value = "x' OR '1'='1; DROP TABLE consent_events; --"
    status, body = await api(http, "GET", f"{service.base_url}/api/consent-events?{field}={value}", staff)
    assert status in (200, 400)
    if status == 200:
        assert body["events"] == []
