"""RFC 3161 time-stamps on checkpoints, from a time-stamping authority (``rfc3161-client``).

A checkpoint's own time is the service's word; a time-stamp token is a third party's: the
TSA signs the SHA-256 of the checkpoint's signed text with its time, so the checkpoint
provably existed then — whatever the service's clock or key holder claim later.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import aiohttp
from cryptography import x509
from rfc3161_client import (
    HashAlgorithm,
    PKIStatus,
    TimestampRequestBuilder,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

__all__ = ["TSA_TIMEOUT_S", "Timestamper", "TimestampError", "check_token", "load_roots"]

# A TSA answers in well under a second; one that does not is skipped for this checkpoint.
TSA_TIMEOUT_S = 10.0
_QUERY, _REPLY = "application/timestamp-query", "application/timestamp-reply"


class TimestampError(Exception):
    """The TSA could not be reached, or did not grant a token."""


class Timestamper:
    def __init__(self, url: str) -> None:
        self.url = url

    async def stamp(self, data: bytes) -> bytes:
        """The TSA's DER response over SHA-256(``data``): a granted token, checked to be about ``data``."""
        request = TimestampRequestBuilder().data(data).hash_algorithm(HashAlgorithm.SHA256)
        body = request.cert_request(cert_request=True).build().as_bytes()
        timeout = aiohttp.ClientTimeout(total=TSA_TIMEOUT_S)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                http.post(self.url, data=body, headers={"Content-Type": _QUERY}) as resp,
            ):
                if resp.status != 200:
                    raise TimestampError(f"the TSA answered HTTP {resp.status}")
                reply = await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TimestampError(f"could not reach the TSA ({type(exc).__name__})") from exc
        problem = check_token(reply, data, None)
        if problem is not None:
            raise TimestampError(problem)
        return reply


def load_roots(ca_file: Path | None) -> list[x509.Certificate] | None:
    """The TSA roots to verify tokens against (PEM); None when none are configured."""
    if ca_file is None:
        return None
    return x509.load_pem_x509_certificates(ca_file.read_bytes())


def check_token(reply: bytes, data: bytes, roots: list[x509.Certificate] | None) -> str | None:
    """None if ``reply`` is a granted time-stamp over SHA-256(``data``) (and, given ``roots``,
    signed by a TSA certified by one of them); otherwise what is wrong with it."""
    digest = hashlib.sha256(data).digest()
    try:
        response = decode_timestamp_response(reply)
    except ValueError as exc:
        return f"the time-stamp token is not readable ({exc})"
    if response.status not in (PKIStatus.GRANTED, PKIStatus.GRANTED_WITH_MODS):
        return f"the TSA did not grant a time-stamp (status {response.status})"
    if response.tst_info.message_imprint.message != digest:
        return "the time-stamp token is about other data"
    if roots is None:
        return None
    try:
        VerifierBuilder(roots=roots).build().verify(response, digest)
    except VerificationError as exc:
        return f"the time-stamp token does not verify against TSA_CA_FILE ({exc})"
    return None
