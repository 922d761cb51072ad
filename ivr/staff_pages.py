"""Staff web pages: sign in, search, a person's consents, a call's evidence, requests, the access log.

Server-rendered (aiohttp-jinja2, autoescaped), readable when printed. Every page that
shows evidence writes the access log first, with the reason the staff member typed.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from ivr.api.staff import REQUEST_STATUSES, audit, bundle_response, kept_audio, load_story, phone_of
from ivr.auth import PUBLIC, SESSION_COOKIE, WEB_SESSION, requires
from ivr.kdf import verify_secret
from ivr.keys import FLOWS, PG_POOL, RATE_LIMITER, SETTINGS, WEB_SESSIONS
from storage.customers import customer
from storage.ledger import chained
from storage.lookups import access_log_entries, request_status_change, requests_by_status, subject_timeline
from storage.state import consent_state
from storage.tokens import find_token
from storage.users import find_user
from storage.web_sessions import SESSION_TTL_S

__all__ = [
    "access_log_page",
    "call_bundle_page",
    "call_page",
    "login",
    "login_form",
    "logout",
    "person_page",
    "recording_audio",
    "request_status",
    "requests_page",
    "search_page",
]

_CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
_ACCOUNT = re.compile(r"^\d{4,20}$")


def _page(request: web.Request, template: str, **context: Any) -> web.Response:
    session = request.get(WEB_SESSION)
    return aiohttp_jinja2.render_template(template, request, {"session": session, **context})


LOGIN_CSRF_COOKIE = "ivr_login_csrf"


@requires(PUBLIC)
async def login_form(request: web.Request) -> web.Response:
    """The sign-in form, with a CSRF token it must come back with (double-submit cookie)."""
    return _login_page(request, request.query.get("next", "/staff"), None)


def _login_page(request: web.Request, target: str, error: str | None) -> web.Response:
    csrf = secrets.token_urlsafe(24)
    response = _page(request, "login.html", next=target, error=error, login_csrf=csrf)
    secure = request.app[SETTINGS].base_url.startswith("https://")
    response.set_cookie(
        LOGIN_CSRF_COOKIE, csrf, max_age=3600, httponly=True, samesite="Strict", secure=secure, path="/staff"
    )
    return response


@requires(PUBLIC)
async def login(request: web.Request) -> web.Response:
    """Sign in with a username and password, or with a staff/admin API token."""
    form = await request.post()
    username, password, token = (str(form.get(k, "")).strip() for k in ("username", "password", "token"))
    target = str(form.get("next", "/staff"))
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(str(form.get("csrf", "")), expected):
        raise web.HTTPForbidden(text="the sign-in form is stale or forged (CSRF check failed); reload it")
    limits, per_min = request.app[RATE_LIMITER], request.app[SETTINGS].login_rate_per_min
    for scope, who in (("login-address", request.remote or "?"), ("login-user", username or "(token)")):
        wait = await limits.over(scope, who, per_min, 60)
        if wait is not None:
            raise web.HTTPTooManyRequests(text=f"Too many sign-in attempts; try again in {wait} s.")
    name = role = None
    token_id = None
    async with request.app[PG_POOL].acquire() as conn:
        if token:
            found = await find_token(conn, token)
            if found is not None and found.role in ("staff", "admin"):
                name, role, token_id = found.name, found.role, found.id
        elif username:
            user = await find_user(conn, username)
            if user is not None and verify_secret(password, user["password_hash"]):
                name, role = user["username"], user["role"]
    if name is None or role is None:
        return _login_page(request, target, "Those details did not sign you in.")
    session_id, _ = await request.app[WEB_SESSIONS].open(name, role, token_id)
    response = web.HTTPSeeOther(target if target.startswith("/staff") else "/staff")
    secure = request.app[SETTINGS].base_url.startswith("https://")
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=SESSION_TTL_S,
        httponly=True,
        samesite="Strict",
        secure=secure,
        path="/staff",
    )
    raise response


@requires("staff")
async def logout(request: web.Request) -> web.Response:
    await request.app[WEB_SESSIONS].close(request.cookies.get(SESSION_COOKIE, ""))
    response = web.HTTPSeeOther("/staff/login")
    response.del_cookie(SESSION_COOKIE, path="/staff")
    raise response


@requires("staff")
async def search_page(request: web.Request) -> web.Response:
    """Search by phone number, account number or CallSid."""
    query = request.query.get("q", "").strip()
    if not query:
        return _page(request, "search.html", query="", error=None)
    if _CALL_SID.match(query):
        raise web.HTTPSeeOther(f"/staff/calls/{query}")
    if _ACCOUNT.match(query):
        async with request.app[PG_POOL].acquire() as conn:
            if await customer(conn, query) is not None:  # a known account, even if it looks like a number
                raise web.HTTPSeeOther(f"/staff/people/{query}")
    try:
        raise web.HTTPSeeOther(f"/staff/people/{phone_of(query)}")
    except web.HTTPBadRequest:
        return _page(
            request, "search.html", query=query, error="That is not a phone number, account number or CallSid."
        )


@requires("staff")
async def person_page(request: web.Request) -> web.Response:
    subject = request.match_info["subject"]
    if not _ACCOUNT.match(subject):
        subject = phone_of(subject)
    await audit(request, "person.page", subject)
    now = datetime.now(UTC)
    rules = request.app[FLOWS].purpose_rules()
    async with request.app[PG_POOL].acquire() as conn:
        states = [
            await consent_state(conn, subject, purpose, as_of=now, opt_out_days=days)
            for purpose, days in sorted(rules.items())
        ]
        timeline = await subject_timeline(conn, subject)
    return _page(request, "person.html", subject=subject, states=states, timeline=timeline, now=now)


@requires("staff")
async def call_page(request: web.Request) -> web.Response:
    story = await load_story(request, "call.page")
    return _page(request, "call.html", story=story, call=story["call"]["row"])


@requires("staff")
async def call_bundle_page(request: web.Request) -> web.Response:
    return await bundle_response(request)


@requires("staff")
async def recording_audio(request: web.Request) -> web.Response:
    kept = await kept_audio(request)
    if kept is None:
        raise web.HTTPNotFound(text="that recording has not been fetched yet")
    media, content_type = kept
    return web.Response(body=media, content_type=content_type)


@requires("staff")
async def requests_page(request: web.Request) -> web.Response:
    status = request.query.get("status") or None
    await audit(request, "requests.page", status or "*")
    async with request.app[PG_POOL].acquire() as conn:
        rows = await requests_by_status(conn, status if status in REQUEST_STATUSES else None)
    return _page(request, "requests.html", requests=rows, statuses=REQUEST_STATUSES, status=status)


@requires("staff")
async def request_status(request: web.Request) -> web.Response:
    form = await request.post()
    status = str(form.get("status", ""))
    if status not in REQUEST_STATUSES or not request.match_info["request_id"].isdigit():
        raise web.HTTPBadRequest(text="unknown status")
    async with request.app[PG_POOL].acquire() as conn, chained(conn) as chain:
        await request_status_change(
            chain,
            int(request.match_info["request_id"]),
            status,
            str(form.get("note", "")) or None,
            request[WEB_SESSION].name,
        )
    raise web.HTTPSeeOther("/staff/requests")


@requires("admin")
async def access_log_page(request: web.Request) -> web.Response:
    async with request.app[PG_POOL].acquire() as conn:
        rows = await access_log_entries(conn, 500)
    return _page(request, "access_log.html", entries=rows)
