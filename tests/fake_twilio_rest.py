"""Twilio's REST API for calls, as a real HTTP server on loopback, for transfer tests.

It checks what the service sends (path, basic auth, form fields), remembers it, and
answers each CallSid from a script: an error status (with Twilio's JSON error body)
or success.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.test_utils import unused_port

from tests.fake_twilio import ACCOUNT_SID

ERRORS = {
    404: (20404, "The requested resource was not found"),
    400: (21220, "Call is not in-progress. Cannot redirect."),
    401: (20003, "Authenticate"),
    429: (20429, "Too Many Requests"),
    500: (20500, "Internal Server Error"),
}


@dataclass
class Redirect:
    call_sid: str
    url: str
    method: str


@dataclass
class FakeTwilioRest:
    auth_token: str = ""
    url: str = ""
    scripts: dict[str, list[int]] = field(default_factory=dict)
    redirects: list[Redirect] = field(default_factory=list)
    attempts: int = 0

    async def update_call(self, request: web.Request) -> web.Response:
        self.attempts += 1
        account, call_sid = request.match_info["account"], request.match_info["call_sid"]
        expected = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{self.auth_token}".encode()).decode()
        if account != ACCOUNT_SID or request.headers.get("Authorization") != expected:
            return _error(401)
        script = self.scripts.get(call_sid)
        if script:
            return _error(script.pop(0))
        form = await request.post()
        self.redirects.append(Redirect(call_sid, str(form["Url"]), str(form["Method"])))
        return web.json_response({"sid": call_sid, "account_sid": account, "status": "in-progress"})


def _error(status: int) -> web.Response:
    code, message = ERRORS[status]
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return web.json_response(body, status=status)


@asynccontextmanager
async def fake_twilio_rest(auth_token: str) -> AsyncIterator[FakeTwilioRest]:
    fake = FakeTwilioRest(auth_token)
    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{account}/Calls/{call_sid}.json", fake.update_call)
    runner = web.AppRunner(app)
    await runner.setup()
    port = unused_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()
