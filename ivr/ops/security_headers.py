"""The headers every response carries, and a deadline for reading a request's body.

The pages and the agent page load only their own scripts and styles (``/assets/…``, no
inline code), so the policy needs no ``unsafe-inline``; nothing may frame them; nothing
showing evidence is cached anywhere; a response is never sniffed into another type.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.typedefs import Handler

from ivr.appkeys import SETTINGS

__all__ = ["LINGERING_TIME_S", "PAGE_POLICY", "read_body_in_time", "set_security_headers"]

PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# JSON, audio, archives: nothing in them runs, and nothing may frame them.
DATA_POLICY = "default-src 'none'; frame-ancestors 'none'; sandbox"
# Not "Python/3.11 aiohttp/3.x": versions help only whoever looks for a known flaw.
SERVER = "consent-ivr"
ASSETS_PREFIX = "/assets/"
# After answering a request whose body it did not read to the end (408 above, 413), aiohttp
# keeps reading and discarding it for this long so the client sees the answer: its default
# of 10 s would give a slow client those seconds again. (``web.AppRunner(lingering_time=…)``)
LINGERING_TIME_S = 1.0


async def set_security_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """``on_response_prepare``: runs for every response, errors and redirects included."""
    headers = response.headers
    headers["Server"] = SERVER
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    html = (response.content_type or "").startswith("text/html")
    headers["Content-Security-Policy"] = PAGE_POLICY if html else DATA_POLICY
    if html:
        headers["X-Frame-Options"] = "DENY"
    if request.path.startswith(ASSETS_PREFIX):
        headers.setdefault("Cache-Control", "public, max-age=3600")
    else:
        headers["Cache-Control"] = "no-store"  # evidence, sessions, webhooks: kept nowhere


@web.middleware
async def read_body_in_time(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Read a request's body within BODY_READ_TIMEOUT_S (aiohttp itself would wait forever
    for a client sending a byte every few seconds); 408 and the connection closed if not.
    Twilio's bodies are a few KB, the API's a few hundred bytes."""
    if request.body_exists and not request.content_type.startswith("multipart/"):
        try:
            # asyncio.timeout, not wait_for: no task of its own on every request.
            async with asyncio.timeout(request.config_dict[SETTINGS].body_read_timeout_s):
                await request.read()  # kept by aiohttp: the handler's read() or post() reuses it
        except TimeoutError:
            raise web.HTTPRequestTimeout(
                text="the request body was not sent in time", headers={"Connection": "close"}
            ) from None
    return await handler(request)
