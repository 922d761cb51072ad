"""Proof that a webhook came from Twilio: ``X-Twilio-Signature`` over the public URL."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from aiohttp import web
from twilio.request_validator import RequestValidator

__all__ = ["SIGNATURE_HEADER", "SignatureCheck"]

SIGNATURE_HEADER = "X-Twilio-Signature"


class SignatureCheck:
    """Checks webhook signatures the way Twilio computes them.

    Twilio signs the URL *it* requested, so the check uses ``PUBLIC_BASE_URL`` plus
    the raw path and query this server received (never a re-normalised copy), and the
    form parameters. ``RequestValidator`` accepts the URL with or without a default
    port, as Twilio has signed both ways over the years.
    """

    def __init__(self, auth_token: str, public_base_url: str) -> None:
        self._validator = RequestValidator(auth_token)
        self._base_url = public_base_url.rstrip("/")

    def url_of(self, request: web.BaseRequest) -> str:
        return self._base_url + request.raw_path

    def is_genuine(self, request: web.BaseRequest, form: Mapping[str, str]) -> bool:
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not signature:
            return False
        url = self.url_of(request)
        # The URL exactly as configured is how Twilio signs today: one HMAC settles it;
        # only a mismatch pays for validate()'s variants with and without a port.
        if hmac.compare_digest(self._validator.compute_signature(url, form), signature):
            return True
        return bool(self._validator.validate(url, form, signature))
