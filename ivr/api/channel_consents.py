"""``POST /api/consents``: a decision taken on another channel (a web form, a written form, an agent).

The same subject rules as the phone line (docs/consent-rules.md, CR-19): a revocation
always counts; a grant binds only a subject its verification covers. Malformed input is
400, input the rules refuse is 422; either way nothing is stored.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import web

from ivr.access.roles import PRINCIPAL, requires
from ivr.api.errors import api_error
from ivr.api.params import json_response
from ivr.appkeys import FLOWS, PG_POOL, SETTINGS
from ivr.identifiers import InvalidIdentifier
from ivr.subjects import SubjectType, resolve_subject
from ivr.time_budget import POOL_ACQUIRE_S
from storage.channel_decisions import ChannelDecision, Document, record_channel_decision
from storage.deadlines import honor_deadline, local_date
from storage.ledger import chained

__all__ = ["CHANNELS", "GRANT_VERIFICATIONS", "MAX_DOCUMENT_BYTES", "MEDIA_TYPES", "record_consent"]

CHANNELS = ("web_form", "written_form", "agent")
# How a person was verified, for a grant. An account PIN or a signed-in account verifies
# an account, so the grant must name that account; a signed document or an ID an agent
# checked verifies the person, for their account or a number they attest is theirs.
GRANT_VERIFICATIONS = ("account_pin", "signed_document", "logged_in_account", "agent_verified_id")
_ACCOUNT_ONLY = frozenset({"account_pin", "logged_in_account"})
# The first bytes each accepted type starts with: a document is what its bytes say.
MEDIA_TYPES = {"application/pdf": b"%PDF-", "image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}
# The whole request must fit the app's 256 KiB body limit (ivr/app.py) once in base64.
MAX_DOCUMENT_BYTES = 160 * 1024
_MAX_TEXT = 20_000
_MAX_NAME = 200
_MAX_LANG = 35  # the longest BCP 47 tag anyone uses
# Older than any form this service could have been given; and asyncpg cannot send year 1.
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
# A form collected "now" on a device whose clock runs a little fast is still believed.
_CLOCK_SKEW = timedelta(minutes=5)


@requires("staff", "integration")
async def record_consent(request: web.Request) -> web.Response:
    """``POST /api/consents``: 201 with the decision's ``event_id``; 400/422 and nothing stored."""
    body = await _body(request)
    decision = await _decision(request, body)
    async with request.config_dict[PG_POOL].acquire(timeout=POOL_ACQUIRE_S) as conn, chained(conn) as chain:
        row = await record_channel_decision(chain, decision)
    return json_response(
        {
            "id": row["id"],
            "event_id": str(row["content"]["event_id"]),
            "subject": decision.subject,
            "purpose": decision.purpose,
            "action": decision.action,
            "channel": decision.channel,
            "honor_by": decision.honor_by.isoformat() if decision.honor_by else None,
            "document_sha256": decision.document.sha256 if decision.document else None,
        },
        status=201,
    )


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise api_error(400, "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise api_error(400, "the body must be a JSON object")
    for name in ("subject", "purpose", "action", "channel", "text", "collected_by", "collected_at"):
        if not isinstance(body.get(name), str) or not body[name].strip():
            raise api_error(400, f"{name} is required, as a non-empty string")
    for name in ("verification", "lang"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise api_error(400, f"{name} must be a string")
    if any("\x00" in v for v in body.values() if isinstance(v, str)):
        raise api_error(400, "text fields cannot hold NUL")
    return body


async def _decision(request: web.Request, body: dict[str, Any]) -> ChannelDecision:
    purposes = request.config_dict[FLOWS].purpose_rules()
    if body["purpose"] not in purposes:
        raise api_error(422, f"unknown purpose {body['purpose']!r}")
    if body["action"] not in ("grant", "revoke"):
        raise api_error(422, "action must be grant or revoke")
    if body["channel"] not in CHANNELS:
        raise api_error(422, f"channel must be one of {', '.join(CHANNELS)}")
    if (
        len(body["text"]) > _MAX_TEXT
        or len(body["collected_by"]) > _MAX_NAME
        or len(body.get("lang") or "") > _MAX_LANG
    ):
        raise api_error(422, f"text is at most {_MAX_TEXT} characters, collected_by {_MAX_NAME}, lang {_MAX_LANG}")
    collected_at = _time(body["collected_at"])
    document = _document(body.get("document"))
    async with request.config_dict[PG_POOL].acquire(timeout=POOL_ACQUIRE_S) as conn:
        try:
            subject = await resolve_subject(conn, body["subject"])
        except InvalidIdentifier as exc:
            raise api_error(400, str(exc)) from None
    verification = body.get("verification") or "none"
    if body["action"] == "grant":
        _check_grant(verification, subject.type, document)
    elif verification not in ("none", *GRANT_VERIFICATIONS):
        raise api_error(422, f"verification must be one of {', '.join(GRANT_VERIFICATIONS)} (or none, to revoke)")
    return ChannelDecision(
        subject=subject.value,
        subject_kind="customer" if subject.type is SubjectType.ACCOUNT else "phone",
        purpose=body["purpose"],
        action=body["action"],
        channel=body["channel"],
        text_shown=body["text"],
        lang=body.get("lang") or "en",
        collected_by=body["collected_by"].strip(),
        collected_at=collected_at,
        verification=verification,
        recorded_by=request[PRINCIPAL].name,
        document=document,
        honor_by=_honor_by(request, body["purpose"]) if body["action"] == "revoke" else None,
    )


def _check_grant(verification: str, subject: SubjectType, document: Document | None) -> None:
    """A grant binds only a verified subject (CR-3, CR-19): refused with 422 otherwise."""
    if verification not in GRANT_VERIFICATIONS:
        raise api_error(422, f"a grant needs verification: one of {', '.join(GRANT_VERIFICATIONS)}")
    if verification in _ACCOUNT_ONLY and subject is not SubjectType.ACCOUNT:
        raise api_error(422, f"{verification} verifies an account: name the known account as the subject")
    if verification == "signed_document" and document is None:
        raise api_error(422, "signed_document needs the signed document")


def _time(raw: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise api_error(400, "collected_at must be an ISO 8601 time with its UTC offset") from None
    if moment.tzinfo is None:
        raise api_error(400, "collected_at must be an ISO 8601 time with its UTC offset")
    try:
        believable = _EARLIEST <= moment <= datetime.now(UTC) + _CLOCK_SKEW
    except OverflowError:  # year 1 at +14:00 is before the first moment a datetime can hold
        believable = False
    if not believable:
        raise api_error(422, "collected_at is in the future, or before 2000")
    return moment


def _document(given: Any) -> Document | None:
    if given is None:
        return None
    if not isinstance(given, dict) or not isinstance(given.get("media_type"), str):
        raise api_error(400, "document must be an object with media_type and content (base64)")
    if not isinstance(given.get("content"), str):
        raise api_error(400, "document must be an object with media_type and content (base64)")
    media_type, encoded = given["media_type"], given["content"]
    if media_type not in MEDIA_TYPES:
        raise api_error(422, f"document media_type must be one of {', '.join(MEDIA_TYPES)}")
    if len(encoded) > (MAX_DOCUMENT_BYTES + 2) // 3 * 4:
        raise api_error(422, f"the document is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        content = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise api_error(400, "document content is not valid base64") from None
    if not content.startswith(MEDIA_TYPES[media_type]):
        raise api_error(422, f"the document is not a {media_type}")
    return Document(content, media_type)


def _honor_by(request: web.Request, purpose: str) -> date | None:
    """The revocation's honor-by date, as the phone line counts it for the purpose."""
    flows = request.config_dict[FLOWS].deployed.values()
    days = max((f.purposes[purpose].honor_business_days or 0 for f in flows if purpose in f.purposes), default=0)
    if not days:
        return None
    return honor_deadline(local_date(datetime.now(UTC), request.config_dict[SETTINGS].business_timezone), days)
