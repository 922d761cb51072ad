"""Customers' PINs, hashed with a pepper: HMAC-SHA256 under a key kept outside the database, then scrypt.

A PIN has at most 10^8 values: whoever copies the customer directory could try them all
against a salted hash, however slow. The pepper is what they would not have: it lives
in the environment or a file (``PIN_PEPPER``, ``PIN_PEPPER_FILE``, or one generated
under ``IVR_DATA_DIR``), never in Postgres, so a stolen table alone gives up no PIN.
Lose it and every PIN hashed with it stops matching: it is backed up like a key.

Hashes are tagged by scheme. ``hmac-scrypt$KEY_ID$N$r$p$salt$digest`` is today's (the key
id says which pepper, so a service started with another one says so instead of only
refusing everyone); ``scrypt$…`` hashes from before the pepper still verify, and are
replaced with a peppered hash after their next right PIN (``needs_upgrade``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

import structlog

from ivr.access.passwords import verify_secret

__all__ = ["MIN_PEPPER_BYTES", "PEPPER_FILE", "SCHEME", "PepperError", "PinHasher", "load_pepper"]

log = structlog.get_logger(__name__)

SCHEME = "hmac-scrypt"
_LEGACY = "scrypt$"  # ivr.access.passwords' hashes: the PINs stored before the pepper
PEPPER_FILE = "pin-pepper"  # under IVR_DATA_DIR when neither PIN_PEPPER nor PIN_PEPPER_FILE is set
MIN_PEPPER_BYTES = 32  # an HMAC-SHA256 key of a full block of entropy
# The same cost as the hashes before the pepper (ivr.access.passwords): a check on a call
# stays tens of milliseconds on a 2-core host; the pepper, not the cost, is what makes a
# stolen directory useless.
_N, _R, _P, _LEN = 2**14, 8, 1, 32
_SALT_LEN = 16
_KEY_ID_DOMAIN = b"consent-ivr PIN pepper id\n"


class PepperError(Exception):
    """The pepper cannot be had: the configured file is missing, or what it holds is no key."""


class PinHasher:
    """Hashes and checks PINs under one pepper; its repr never shows the key."""

    def __init__(self, pepper: bytes) -> None:
        if len(pepper) < MIN_PEPPER_BYTES:
            raise PepperError(f"the PIN pepper must be at least {MIN_PEPPER_BYTES} bytes")
        self._pepper = pepper
        self.key_id = hashlib.sha256(_KEY_ID_DOMAIN + pepper).hexdigest()[:16]
        # What a PIN for no one (an unknown account, no PIN set) is checked against: the
        # same work as a real check, so the time taken tells nothing; no PIN derives it.
        self._stand_in = self._encode(bytes(_SALT_LEN), bytes(_LEN))

    def __repr__(self) -> str:
        return f"PinHasher(key_id={self.key_id!r})"

    def hash(self, pin: str) -> str:
        salt = secrets.token_bytes(_SALT_LEN)
        return self._encode(salt, self._derive(pin, salt, _N, _R, _P))

    def verify(self, pin: str, stored: str | None) -> bool:
        """Whether ``pin`` is the one ``stored`` was made from (peppered or from before the
        pepper); with nothing usable stored, the same work is done and the answer is no."""
        if stored is not None and stored.startswith(_LEGACY):
            return verify_secret(pin, stored)
        fields = _fields(stored) if stored is not None else None
        if fields is not None and fields[0] != self.key_id:
            log.error("pin_pepper_mismatch", hashed_with=fields[0], configured=self.key_id)
            fields = None
        real = fields is not None
        _, n, r, p, salt, digest = fields or _fields(self._stand_in) or ("", _N, _R, _P, b"", b"")
        try:
            derived = self._derive(pin, salt, n, r, p)
        except ValueError:  # parameters scrypt refuses: no PIN matches them
            return False
        return real and hmac.compare_digest(derived, digest)

    @staticmethod
    def needs_upgrade(stored: str) -> bool:
        """A hash from before the pepper, to be replaced once its PIN is known right."""
        return not stored.startswith(SCHEME + "$")

    def _derive(self, pin: str, salt: bytes, n: int, r: int, p: int) -> bytes:
        keyed = hmac.new(self._pepper, pin.encode(), hashlib.sha256).digest()
        return hashlib.scrypt(keyed, salt=salt, n=n, r=r, p=p, dklen=_LEN, maxmem=64 * 1024 * 1024)

    def _encode(self, salt: bytes, digest: bytes) -> str:
        b64 = base64.b64encode
        return f"{SCHEME}${self.key_id}${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def _fields(stored: str) -> tuple[str, int, int, int, bytes, bytes] | None:
    """A peppered hash's key id, cost parameters, salt and digest (None: not one)."""
    try:
        scheme, key_id, n, r, p, salt, digest = stored.split("$")
        if scheme != SCHEME:
            return None
        return key_id, int(n), int(r), int(p), base64.b64decode(salt), base64.b64decode(digest)
    except ValueError:
        return None


def load_pepper(configured: str | None, key_file: Path | None, data_dir: Path) -> PinHasher:
    """The PIN hasher: ``PIN_PEPPER`` (base64), else ``PIN_PEPPER_FILE`` (which must exist:
    a missing file is a mount gone wrong, and a new pepper would lock every customer out),
    else the file under the data directory, generated now (mode 0600) if there is none."""
    if configured:
        return PinHasher(base64.b64decode(configured))
    if key_file is not None:
        if not key_file.is_file():
            raise PepperError(f"PIN_PEPPER_FILE {key_file} does not exist")
        return PinHasher(_read(key_file))
    path = data_dir / PEPPER_FILE
    if not path.exists():
        _create(path)
    return PinHasher(_read(path))


def _read(path: Path) -> bytes:
    try:
        return base64.b64decode(path.read_text().strip(), validate=True)
    except ValueError:
        raise PepperError(f"{path} does not hold a base64 PIN pepper") from None


def _create(path: Path) -> None:
    """A new pepper, published whole or not at all: written to a file of its own, then
    linked into place, so a second process starting at the same moment reads either
    nothing (and makes none) or the whole key — and both end up with the same one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(base64.b64encode(secrets.token_bytes(MIN_PEPPER_BYTES)).decode() + "\n")
    try:
        os.link(draft, path)
        log.warning("pin_pepper_generated", path=str(path), note="back it up: without it no PIN matches")
    except FileExistsError:
        pass  # another process made it first: theirs is the one
    finally:
        draft.unlink()
