"""Proof that a webhook came from Twilio: ``X-Twilio-Signature`` over the public URL.

Twilio signs with HMAC-SHA1 keyed with the account's auth token, or — for webhooks a
Webhook Rule with a SharedKey covers — with HMAC-SHA256 keyed with that shared key, and
then says so in ``X-Twilio-Webhooks-Signature-Settings: key=ID,algorithm=HMAC_SHA256``.
The signed string is the same either way.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from aiohttp import web
from twilio.request_validator import HMAC_SHA1, HMAC_SHA256, RequestValidator

__all__ = ["SIGNATURE_HEADER", "SIGNATURE_SETTINGS_HEADER", "SignatureCheck"]

SIGNATURE_HEADER = "X-Twilio-Signature"
SIGNATURE_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"


class SignatureCheck:
    """Checks webhook signatures the way Twilio computes them.

    Twilio signs the URL *it* requested, so the check uses ``PUBLIC_BASE_URL`` plus
    the raw path and query this server received (never a re-normalised copy), and the
    form parameters. ``RequestValidator`` accepts the URL with or without a default
    port, as Twilio has signed both ways over the years.
    """

    def __init__(
        self, auth_token: str, public_base_url: str, *, shared_key: str | None = None, shared_key_id: str | None = None
    ) -> None:
        self._validators = {HMAC_SHA1: RequestValidator(auth_token)}
        if shared_key:
            self._validators[HMAC_SHA256] = RequestValidator(shared_key)
        self._shared_key_id = shared_key_id
        self._base_url = public_base_url.rstrip("/")

    def url_of(self, request: web.BaseRequest) -> str:
        return self._base_url + request.raw_path

    def is_genuine(self, request: web.BaseRequest, form: Mapping[str, str]) -> bool:
        signature = request.headers.get(SIGNATURE_HEADER, "")
        algorithm = self._algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER, ""))
        validator = self._validators.get(algorithm) if algorithm else None
        if not signature or validator is None:
            return False  # unsigned, or signed with a key or algorithm this service does not hold
        url = self.url_of(request)
        # The URL exactly as configured is how Twilio signs today: one HMAC settles it;
        # only a mismatch pays for validate()'s variants with and without a port.
        if hmac.compare_digest(validator.compute_signature(url, form, algorithm), signature):
            return True
        return bool(validator.validate(url, form, signature, algorithm))

    def _algorithm(self, settings_header: str) -> str | None:
        """The algorithm the header names (none: HMAC-SHA1), or None for one refused:
        unknown, or a shared key other than the one configured."""
        fields = dict(part.strip().partition("=")[::2] for part in settings_header.split(",") if part.strip())
        algorithm = fields.get("algorithm", "").strip().upper() or HMAC_SHA1
        if algorithm not in (HMAC_SHA1, HMAC_SHA256):
            return None
        if algorithm == HMAC_SHA256 and self._shared_key_id and fields.get("key", "").strip() != self._shared_key_id:
            return None
        return algorithm
