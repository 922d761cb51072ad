"""Standard Webhooks signatures (v1): what a receiver checks, computed exactly as the spec says.

Signed content is ``{webhook-id}.{webhook-timestamp}.{body}``. Symmetric (``v1,``):
base64 HMAC-SHA256 keyed with the base64-decoded part of a ``whsec_`` secret. Asymmetric
(``v1a,``): base64 Ed25519 signature with the key whose 32-byte seed a ``whsk_`` secret
holds; the receiver verifies with the ``whpk_`` public key. ``webhook-signature`` lists one
signature per secret in use, space-separated (two while a rotated secret's grace lasts).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = ["NewSecret", "Scheme", "new_secret", "public_key_of", "sign", "signature_header"]

SYMMETRIC_PREFIX = "whsec_"
PRIVATE_PREFIX = "whsk_"
PUBLIC_PREFIX = "whpk_"
# The spec allows 24 to 64 random bytes; 32 is HMAC-SHA256's block-free sweet spot.
SECRET_BYTES = 32


class Scheme(StrEnum):
    HMAC_SHA256 = "v1"
    ED25519 = "v1a"


@dataclass(frozen=True)
class NewSecret:
    """A secret as stored (what signs), and what its owner is shown once (what verifies)."""

    stored: str
    shown: str


def new_secret(scheme: Scheme) -> NewSecret:
    if scheme is Scheme.HMAC_SHA256:
        secret = SYMMETRIC_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()
        return NewSecret(secret, secret)
    private = PRIVATE_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()
    return NewSecret(private, public_key_of(private))


def public_key_of(private: str) -> str:
    """``whsk_…`` -> the ``whpk_…`` a receiver verifies ``v1a`` signatures with."""
    raw = _ed25519(private).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return PUBLIC_PREFIX + base64.b64encode(raw).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One versioned signature (``v1,…`` or ``v1a,…``) of the message, by the secret's kind."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    if secret.startswith(SYMMETRIC_PREFIX):
        key = base64.b64decode(secret.removeprefix(SYMMETRIC_PREFIX))
        return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    return "v1a," + base64.b64encode(_ed25519(secret).sign(content)).decode()


def signature_header(signing_secrets: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in signing_secrets)


def _ed25519(private: str) -> Ed25519PrivateKey:
    if not private.startswith(PRIVATE_PREFIX):
        raise ValueError("not a whsk_ secret")
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(private.removeprefix(PRIVATE_PREFIX)))
