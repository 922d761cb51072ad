"""PINs and passwords stored only as salted scrypt hashes (a memory-hard KDF, standard library).

Staff passwords are hashed and checked off the event loop (``hash_password``,
``check_password``): tens of milliseconds of scrypt would otherwise stall every other
request, and would time how far a sign-in got. An unknown username is checked against a
stand-in hash of the same cost, so a wrong password costs the same whether or not the
user exists.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable

__all__ = ["UNKNOWN_USER_HASH", "check_password", "hash_password", "hash_secret", "verify_secret"]

# scrypt cost: ~16 MiB and tens of milliseconds per check on a 2-core host; a 4-8 digit
# PIN is a tiny keyspace, so the lockout, not the hash, is what stops guessing on a call,
# while the cost makes a stolen table expensive to walk.
_N, _R, _P, _LEN = 2**14, 8, 1, 32
_SCHEME = "scrypt"
_SALT_LEN = 16


def _derive(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, dklen=_LEN, maxmem=64 * 1024 * 1024)


def _encode(salt: bytes, digest: bytes) -> str:
    b64 = base64.b64encode
    return f"{_SCHEME}${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


# What an unknown user's password is checked against: today's parameters, so the work is
# the same as for a real user; its all-zero digest is one no password derives.
UNKNOWN_USER_HASH = _encode(bytes(_SALT_LEN), bytes(_LEN))


def hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(_SALT_LEN)
    return _encode(salt, _derive(secret, salt, _N, _R, _P))


def verify_secret(secret: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != _SCHEME:
            return False
        expected = base64.b64decode(digest)
        derived = _derive(secret, base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(derived, expected)


async def hash_password(password: str) -> str:
    """``hash_secret`` in a worker thread."""
    return await asyncio.to_thread(hash_secret, password)


async def check_password(
    password: str, stored: str | None, *, verify: Callable[[str, str], bool] = verify_secret
) -> bool:
    """Whether ``password`` matches ``stored``, checked in a worker thread; with no stored
    hash (no such user) the same check runs against ``UNKNOWN_USER_HASH`` and fails."""
    matched = await asyncio.to_thread(verify, password, stored if stored is not None else UNKNOWN_USER_HASH)
    return matched and stored is not None
