"""Twilio's HMAC-SHA256 signatures (a Webhook Rule's SharedKey) beside HMAC-SHA1 (issue 16,
finding 15): each accepted with its own key, nothing else."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import unused_port

from tests.conftest import AUTH_TOKEN, running_service
from tests.fake_twilio import FakeTwilio

SHARED_KEY = "sk_" + "5" * 32
KEY_ID = "webhooks_sharedkey_0123456789"
SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"


def hmac_sha256(key: str, url: str, params: dict[str, str]) -> str:
    """Twilio's string to sign (the URL, then each name and value in name order), written out here."""
    signed = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(hmac.new(key.encode(), signed.encode(), hashlib.sha256).digest()).decode()


@pytest.fixture
async def ruled(storage, http) -> AsyncIterator[FakeTwilio]:
    env = {"TWILIO_WEBHOOK_SHARED_KEY": SHARED_KEY, "TWILIO_WEBHOOK_SHARED_KEY_ID": KEY_ID}
    async with running_service(storage, unused_port(), **env) as service:
        yield FakeTwilio(http, service.base_url, AUTH_TOKEN)


async def _answer(twilio: FakeTwilio, signature: str, settings: str | None):
    call = twilio.call()
    url, params = twilio.url("/twilio/voice"), call.params()
    headers = {SETTINGS_HEADER: settings} if settings is not None else {}
    return await twilio.post(url, params, signature=signature(url, params), headers=headers)


async def test_a_sha256_signature_with_the_shared_key_is_accepted(ruled: FakeTwilio) -> None:
    answer = await _answer(ruled, lambda u, p: hmac_sha256(SHARED_KEY, u, p), f"key={KEY_ID},algorithm=HMAC_SHA256")
    assert answer.status == 200 and answer.says  # the caller hears the greeting


async def test_sha1_with_the_auth_token_still_works_beside_it(ruled: FakeTwilio) -> None:
    answer = await _answer(ruled, ruled.sign, None)
    assert answer.status == 200


@pytest.mark.parametrize(
    ("key", "settings"),
    [
        (AUTH_TOKEN, f"key={KEY_ID},algorithm=HMAC_SHA256"),  # SHA-256 with the wrong key
        (SHARED_KEY, "key=webhooks_sharedkey_other,algorithm=HMAC_SHA256"),  # another rule's key id
        (SHARED_KEY, f"key={KEY_ID},algorithm=HMAC_MD5"),  # an algorithm nobody signs with
        (SHARED_KEY, None),  # SHA-256 bytes presented as SHA-1
    ],
)
async def test_anything_else_gets_403(ruled: FakeTwilio, key: str, settings: str | None) -> None:
    answer = await _answer(ruled, lambda u, p: hmac_sha256(key, u, p), settings)
    assert answer.status == 403


async def test_without_a_shared_key_a_sha256_webhook_is_refused(twilio: FakeTwilio) -> None:
    answer = await _answer(twilio, lambda u, p: hmac_sha256(SHARED_KEY, u, p), "key=x,algorithm=HMAC_SHA256")
    assert answer.status == 403
