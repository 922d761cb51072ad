"""Moving live calls through Twilio's REST API (the ``twilio`` library, async client).

Twilio's errors become ``CallControlError`` with the HTTP status our API should answer
and a message an agent can act on; nothing waits longer than the timeout, and a 429 is
retried a few times with backoff before giving up.
"""

from __future__ import annotations

import asyncio

import aiohttp
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

__all__ = ["CallControl", "CallControlError"]

# Twilio's code for "Call is not in-progress. Cannot redirect."
NOT_IN_PROGRESS = 21220
RATE_LIMIT_RETRIES = (0.5, 1.5)  # seconds to wait before each retry of a 429


class CallControlError(Exception):
    """Twilio would not (or could not) move the call; ``status`` is what our API answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class CallControl:
    def __init__(self, account_sid: str | None, auth_token: str, api_base_url: str, timeout_s: float = 10.0) -> None:
        self._account_sid = account_sid
        self._http = AsyncTwilioHttpClient(timeout=timeout_s)
        self._client = Client(account_sid or "AC" + "0" * 32, auth_token, http_client=self._http)
        self._client.api.base_url = api_base_url.rstrip("/")

    async def close(self) -> None:
        if self._http.session is not None:
            await self._http.session.close()

    async def redirect(self, call_sid: str, url: str) -> None:
        """Make Twilio fetch the call's next TwiML from ``url`` (POST)."""
        if self._account_sid is None:
            raise CallControlError(503, "TWILIO_ACCOUNT_SID is not configured: calls cannot be moved")
        for pause in (*RATE_LIMIT_RETRIES, None):
            try:
                await self._client.calls(call_sid).update_async(url=url, method="POST")
                return
            except TwilioRestException as exc:
                if exc.status == 429 and pause is not None:
                    await asyncio.sleep(pause)
                    continue
                raise _translated(exc, call_sid) from exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise CallControlError(502, f"could not reach Twilio ({type(exc).__name__})") from exc


def _translated(exc: TwilioRestException, call_sid: str) -> CallControlError:
    if exc.status == 404:
        return CallControlError(404, f"Twilio knows no call {call_sid}")
    if exc.code == NOT_IN_PROGRESS or (exc.status == 400 and "in-progress" in str(exc.msg)):
        return CallControlError(409, f"call {call_sid} is not in progress (it may have ended)")
    if exc.status in (401, 403):
        return CallControlError(502, "Twilio refused our credentials (TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN)")
    if exc.status == 429:
        return CallControlError(503, "Twilio is rate-limiting requests; try again shortly")
    if exc.status >= 500:
        return CallControlError(502, f"Twilio failed (HTTP {exc.status}); try again")
    return CallControlError(502, f"Twilio refused the request: {exc.msg}")
