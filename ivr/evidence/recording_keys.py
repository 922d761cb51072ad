"""The master keys that seal recordings at rest, as the settings name them.

``RECORDING_KEY`` (base64 of 32 bytes) or the file ``RECORDING_KEY_FILE`` holds the
current key, which seals every new recording; ``RECORDING_OLD_KEYS`` and the other
``*.key`` files in the key file's directory are older keys, which only open what they
sealed. With neither set, a key is generated once and kept (mode 0600, in a 0700
directory) under ``IVR_DATA_DIR/recording-keys``, as the checkpoint signing key is:
every process that shares that data directory shares the key.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
from pathlib import Path

import structlog
from pydantic import SecretStr

from ivr.settings import Settings
from storage.recordings import MediaStore, media_store
from storage.sealed_media import KEY_BYTES, RecordingKeys

__all__ = ["DEFAULT_KEY_DIR", "RecordingKeyError", "load_recording_keys", "recording_store"]

log = structlog.get_logger(__name__)

DEFAULT_KEY_DIR = "recording-keys"
CURRENT_KEY_FILE = "current.key"


def recording_store(settings: Settings) -> MediaStore:
    """The RECORDING_STORE the service keeps recordings in, sealing with the configured keys."""
    return media_store(settings.recording_store, settings.data_dir, load_recording_keys(settings))


def load_recording_keys(settings: Settings) -> RecordingKeys:
    """The current key and every older one the settings name (see the module's docstring)."""
    older = [_decoded(part) for part in _listed(settings.recording_old_keys)]
    if settings.recording_key is not None:
        return RecordingKeys.of(_decoded(settings.recording_key.get_secret_value()), older)
    path = settings.recording_key_file or settings.data_dir / DEFAULT_KEY_DIR / CURRENT_KEY_FILE
    if settings.recording_key_file is None and not path.exists():
        _generate(path)
    current = _read_key(path)
    beside = [_read_key(other) for other in sorted(path.parent.glob("*.key")) if other != path]
    return RecordingKeys.of(current, [*older, *beside])


def _listed(secret: SecretStr | None) -> list[str]:
    text = secret.get_secret_value() if secret is not None else ""
    return [part.strip() for part in text.split(",") if part.strip()]


def _decoded(text: str) -> bytes:
    return base64.b64decode(text.strip(), validate=True)  # checked by Settings already


def _read_key(path: Path) -> bytes:
    try:
        key = base64.b64decode(path.read_text().strip(), validate=True)
    except (OSError, ValueError) as exc:
        raise RecordingKeyError(path, f"cannot be read as a base64 key ({exc})") from None
    if len(key) != KEY_BYTES:
        raise RecordingKeyError(path, f"must hold the base64 of exactly {KEY_BYTES} bytes, not {len(key)}")
    return key


def _generate(path: Path) -> None:
    """A new key, written whole and then linked into place, so a process starting at the
    same moment reads either no file or the finished one, and only one key wins."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode() + "\n")
        out.flush()
        os.fsync(out.fileno())
    try:
        os.link(partial, path)
        log.warning("recording_key_generated", path=str(path))
    except FileExistsError:
        pass  # another process made it first: its key is the key
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()


class RecordingKeyError(Exception):
    """A recording key file that cannot be used; names the file."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"recording key file {path}: {problem}")
        self.path = path
