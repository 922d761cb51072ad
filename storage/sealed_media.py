"""Recordings sealed at rest: envelope encryption with AES-256-GCM.

Each recording gets a random data key; the audio is encrypted with it, and the data key
is encrypted ("wrapped") with the master key. The sealed bytes name the master key by
its id, so keys can be rotated: a new master key seals from then on, older ones (kept
beside it) still open what they sealed. A key's id is derived from the key itself, so a
wrong key can never pass for the right one: it simply has another id.

Both layers are bound to the recording's SID (associated data): sealed bytes copied onto
another recording fail to open, as do bytes changed by a single bit.

Layout: ``MAGIC | len(key id) | key id | wrap nonce | wrapped data key | nonce | ciphertext``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["RecordingKeys", "SealBroken", "UnknownRecordingKey", "key_id_of", "seal", "unseal"]

MAGIC = b"IVRSEAL1"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # GCM's standard nonce; random, and each key (data key) seals once
TAG_BYTES = 16
_WRAPPED_BYTES = KEY_BYTES + TAG_BYTES


def key_id_of(key: bytes) -> str:
    """A master key's public name: a hash of it (domain-separated, so it is no use as the key)."""
    return "rk-" + hashlib.sha256(b"ivr recording key id\x00" + key).hexdigest()[:16]


@dataclass(frozen=True)
class RecordingKeys:
    """The master key that seals new recordings, and every key that may open old ones."""

    current: bytes
    older: tuple[bytes, ...] = ()
    _by_id: dict[str, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for key in (self.current, *self.older):
            if len(key) != KEY_BYTES:
                raise ValueError(f"a recording key is {KEY_BYTES} bytes, not {len(key)}")
        object.__setattr__(self, "_by_id", {key_id_of(k): k for k in (*self.older, self.current)})

    @classmethod
    def of(cls, current: bytes, older: Iterable[bytes] = ()) -> RecordingKeys:
        return cls(current, tuple(k for k in older if k != current))

    @property
    def current_id(self) -> str:
        return key_id_of(self.current)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._by_id)

    def __repr__(self) -> str:  # never the keys themselves
        return f"RecordingKeys(current={self.current_id}, older={[key_id_of(k) for k in self.older]})"

    def key(self, key_id: str) -> bytes | None:
        return self._by_id.get(key_id)


class UnknownRecordingKey(LookupError):
    """Sealed with a master key this process does not hold: a configuration problem, not tampering."""

    def __init__(self, recording_sid: str, key_id: str) -> None:
        super().__init__(
            f"recording {recording_sid}: sealed with recording key {key_id}, which this service does not hold "
            "(RECORDING_KEY, RECORDING_OLD_KEYS, the *.key files beside RECORDING_KEY_FILE)"
        )
        self.recording_sid, self.key_id = recording_sid, key_id


class SealBroken(ValueError):
    """Sealed bytes that do not open with the key they name: changed, cut, or another recording's."""

    def __init__(self, recording_sid: str, stored: bytes, reason: str) -> None:
        super().__init__(f"recording {recording_sid}: its sealed bytes {reason}")
        self.recording_sid, self.reason = recording_sid, reason
        self.stored_sha256 = hashlib.sha256(stored).hexdigest()


def seal(keys: RecordingKeys, recording_sid: str, media: bytes) -> bytes:
    """``media`` encrypted under a fresh data key, itself wrapped by the current master key."""
    key_id = keys.current_id.encode()
    data_key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
    wrap_nonce, nonce = os.urandom(NONCE_BYTES), os.urandom(NONCE_BYTES)
    wrapped = AESGCM(keys.current).encrypt(wrap_nonce, data_key, _wrap_context(key_id, recording_sid))
    body = AESGCM(data_key).encrypt(nonce, media, _media_context(recording_sid))
    return b"".join((MAGIC, bytes([len(key_id)]), key_id, wrap_nonce, wrapped, nonce, body))


def unseal(keys: RecordingKeys, recording_sid: str, sealed: bytes, *, expected_key_id: str | None = None) -> bytes:
    """The audio ``seal`` was given. ``UnknownRecordingKey`` if its key is not held,
    ``SealBroken`` if the bytes were changed (or belong to another recording).

    ``expected_key_id``: the key id kept beside the bytes (a Postgres column); the two must agree.
    """
    key_id, wrap_nonce, wrapped, nonce, body = _parts(recording_sid, sealed)
    if expected_key_id is not None and key_id != expected_key_id:
        raise SealBroken(recording_sid, sealed, f"name key {key_id}, but were stored as sealed by {expected_key_id}")
    master = keys.key(key_id)
    if master is None:
        raise UnknownRecordingKey(recording_sid, key_id)
    try:
        data_key = AESGCM(master).decrypt(wrap_nonce, wrapped, _wrap_context(key_id.encode(), recording_sid))
        return AESGCM(data_key).decrypt(nonce, body, _media_context(recording_sid))
    except InvalidTag:
        raise SealBroken(recording_sid, sealed, "fail authentication (changed, or another recording's)") from None


def _parts(recording_sid: str, sealed: bytes) -> tuple[str, bytes, bytes, bytes, bytes]:
    if not sealed.startswith(MAGIC) or len(sealed) < len(MAGIC) + 1:
        raise SealBroken(recording_sid, sealed, "are not sealed media (no header)")
    at = len(MAGIC) + 1
    end_id = at + sealed[len(MAGIC)]
    if len(sealed) < end_id + 2 * NONCE_BYTES + _WRAPPED_BYTES + TAG_BYTES:
        raise SealBroken(recording_sid, sealed, "are cut short")
    try:
        key_id = sealed[at:end_id].decode("ascii")
    except UnicodeDecodeError:
        raise SealBroken(recording_sid, sealed, "name no readable key id") from None
    wrap_nonce = sealed[end_id : end_id + NONCE_BYTES]
    wrapped = sealed[end_id + NONCE_BYTES : end_id + NONCE_BYTES + _WRAPPED_BYTES]
    at = end_id + NONCE_BYTES + _WRAPPED_BYTES
    return key_id, wrap_nonce, wrapped, sealed[at : at + NONCE_BYTES], sealed[at + NONCE_BYTES :]


def _wrap_context(key_id: bytes, recording_sid: str) -> bytes:
    return MAGIC + b"\x00data-key\x00" + key_id + b"\x00" + recording_sid.encode()


def _media_context(recording_sid: str) -> bytes:
    return MAGIC + b"\x00media\x00" + recording_sid.encode()
