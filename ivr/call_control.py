"""Moving live calls through Twilio's REST API (the ``twilio`` library, async client).

Twilio's errors become ``CallControlError`` naming what failed (the call, Twilio, our
configuration) and a message an agent can act on; each door decides what status that
is. Nothing waits longer than the timeout, and a 429 is retried a few times with
backoff before giving up.
"""

from __future__ import annotations

import asyncio
from enum import StrEnum

import aiohttp
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

__all__ = ["CallControl", "CallControlError", "CallControlFailure"]

# Twilio's code for "Call is not in-progress. Cannot redirect."
NOT_IN_PROGRESS = 21220
RATE_LIMIT_RETRIES = (0.5, 1.5)  # seconds to wait before each retry of a 429


class CallControlFailure(StrEnum):
    NOT_CONFIGURED = "not_configured"  # no TWILIO_ACCOUNT_SID: nothing can be moved
    UNKNOWN_CALL = "unknown_call"  # Twilio knows no such call
    NOT_IN_PROGRESS = "not_in_progress"  # the call has ended (or not begun)
    RATE_LIMITED = "rate_limited"  # Twilio kept refusing with 429
    UPSTREAM = "upstream"  # Twilio failed, refused our credentials, or could not be reached


class CallControlError(Exception):
    """Twilio would not (or could not) move the call, and why."""

    def __init__(self, failure: CallControlFailure, message: str) -> None:
        super().__init__(message)
        self.failure, self.message = failure, message


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
            raise CallControlError(
                CallControlFailure.NOT_CONFIGURED, "TWILIO_ACCOUNT_SID is not configured: calls cannot be moved"
            )
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
                raise CallControlError(
                    CallControlFailure.UPSTREAM, f"could not reach Twilio ({type(exc).__name__})"
                ) from exc


def _translated(exc: TwilioRestException, call_sid: str) -> CallControlError:
    if exc.status == 404:
        return CallControlError(CallControlFailure.UNKNOWN_CALL, f"Twilio knows no call {call_sid}")
    if exc.code == NOT_IN_PROGRESS or (exc.status == 400 and "in-progress" in str(exc.msg)):
        return CallControlError(
            CallControlFailure.NOT_IN_PROGRESS, f"call {call_sid} is not in progress (it may have ended)"
        )
    if exc.status in (401, 403):
        return CallControlError(
            CallControlFailure.UPSTREAM, "Twilio refused our credentials (TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN)"
        )
    if exc.status == 429:
        return CallControlError(CallControlFailure.RATE_LIMITED, "Twilio is rate-limiting requests; try again shortly")
    if exc.status >= 500:
        return CallControlError(CallControlFailure.UPSTREAM, f"Twilio failed (HTTP {exc.status}); try again")
    return CallControlError(CallControlFailure.UPSTREAM, f"Twilio refused the request: {exc.msg}")
