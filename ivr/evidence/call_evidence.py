"""One call's evidence for a viewer: its story (chain-checked), its bundle, its audio.

Each read is noted in the access log before anything is read (``ivr.access.audit``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from ivr.access.audit import Viewer, note_view
from ivr.evidence.bundle import evidence_bundle
from ivr.evidence.chain_check import chain_check
from ivr.evidence.checkpoints import Checkpointer
from ivr.flow_catalog import FlowCatalog
from ivr.identifiers import RECORDING_SID, InvalidIdentifier, is_call_sid
from ivr.settings import Settings
from ivr.time_budget import POOL_ACQUIRE_S
from storage.call_story import call_story
from storage.postgres import Connection
from storage.recordings import MediaStore, MediaTampered, UnknownRecordingKey, genuine_media, is_audio_type

__all__ = ["Audio", "Bundle", "CallEvidence", "MediaTampered", "UnknownCall", "UnknownRecordingKey"]

log = structlog.get_logger(__name__)


class UnknownCall(LookupError):
    def __init__(self, call_sid: str) -> None:
        super().__init__(f"no call {call_sid}")
        self.call_sid, self.message = call_sid, f"no call {call_sid}"


@dataclass(frozen=True)
class Bundle:
    filename: str
    body: bytes

    def download(self) -> web.Response:
        """The bundle as a zip download, for whichever door asked."""
        headers = {"Content-Disposition": f'attachment; filename="{self.filename}"'}
        return web.Response(body=self.body, content_type="application/zip", headers=headers)


# A recording kept before only audio was (or under a type unfit for a header) plays as
# WAV, what Twilio sends: never as what the far end once said it was (a text/html body
# served as HTML ran its script in the staff origin).
PLAYBACK_FALLBACK_TYPE = "audio/wav"


@dataclass(frozen=True)
class Audio:
    recording_sid: str
    body: bytes
    content_type: str

    def playback(self) -> web.Response:
        """The audio for a player, for whichever door asked: audio, and nothing a browser may sniff into more."""
        content_type = self.content_type if is_audio_type(self.content_type) else PLAYBACK_FALLBACK_TYPE
        headers = {
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f'inline; filename="{self.recording_sid}.wav"',
        }
        return web.Response(body=self.body, content_type=content_type, headers=headers)


class CallEvidence:
    """Reads a call's evidence on behalf of a viewer."""

    def __init__(
        self, pool: asyncpg.Pool, settings: Settings, flows: FlowCatalog, media: MediaStore, checkpointer: Checkpointer
    ) -> None:
        self._pool, self._settings, self._flows, self._media = pool, settings, flows, media
        self._checkpointer = checkpointer

    async def story(self, viewer: Viewer, call_sid: str, action: str, *, check_media: bool = True) -> dict[str, Any]:
        """Every record of the call in order, with the chain check; ``UnknownCall`` if none.

        ``check_media=False`` leaves the recordings' bytes unread, for a caller that reads
        (and checks) them itself: the bundle.
        """
        if not is_call_sid(call_sid):
            raise InvalidIdentifier("not a CallSid (CA + 32 hex digits)")
        await note_view(self._pool, viewer, action, call_sid)
        async with self._pool.acquire(timeout=POOL_ACQUIRE_S) as conn:
            story = await call_story(conn, call_sid)
            if story is None:
                raise UnknownCall(call_sid)
            check = chain_check(story)
            if check_media:
                check["media_mismatches"] = await self._media_mismatches(conn, story)
                check["intact"] = check["intact"] and not check["media_mismatches"]
        story["chain_check"] = check
        return story

    async def _media_mismatches(self, conn: Connection, story: dict[str, Any]) -> list[dict[str, str]]:
        """The call's kept recordings whose bytes no longer match their chained SHA-256."""
        found: list[dict[str, str]] = []
        for media in story.get("recording_media", []):
            try:
                await genuine_media(conn, self._media, media["row"]["recording_sid"])
            except MediaTampered as exc:
                _alert(exc)
                found.append({"recording_sid": exc.recording_sid, "chained": exc.chained, "actual": exc.actual})
            except UnknownRecordingKey as exc:  # cannot be checked: not shown as intact either
                _unreadable(exc)
                found.append({"recording_sid": exc.recording_sid, "unreadable": str(exc)})
        return found

    async def bundle(self, viewer: Viewer, call_sid: str) -> Bundle:
        """The call's evidence bundle (a zip), noted as a bundle download."""
        story = await self.story(viewer, call_sid, "call.bundle", check_media=False)  # the bundle checks each
        async with self._pool.acquire(timeout=POOL_ACQUIRE_S) as conn:
            body = await evidence_bundle(conn, story, self._settings, self._flows, self._media, self._checkpointer)
        return Bundle(f"evidence-{story['call']['row']['call_sid']}.zip", body)

    async def audio(self, viewer: Viewer, recording_sid: str) -> Audio | None:
        """A kept recording's audio; None if it has not been fetched yet; ``MediaTampered``
        (logged as an alert) if it no longer matches its chained hash; ``UnknownRecordingKey``
        (logged as an alert) if it was sealed with a key this service does not hold."""
        if not RECORDING_SID.match(recording_sid):
            raise InvalidIdentifier("not a RecordingSid (RE + 32 hex digits)")
        await note_view(self._pool, viewer, "recording.media", recording_sid)
        async with self._pool.acquire(timeout=POOL_ACQUIRE_S) as conn:
            try:
                kept = await genuine_media(conn, self._media, recording_sid)
            except MediaTampered as exc:
                _alert(exc)
                raise
            except UnknownRecordingKey as exc:
                _unreadable(exc)
                raise
        return Audio(recording_sid, *kept) if kept is not None else None


def _alert(exc: MediaTampered) -> None:
    log.error("ALERT_media_tampered", recording=exc.recording_sid, chained=exc.chained, actual=exc.actual)


def _unreadable(exc: UnknownRecordingKey) -> None:
    log.error("ALERT_media_unreadable", recording=exc.recording_sid, key_id=exc.key_id)
