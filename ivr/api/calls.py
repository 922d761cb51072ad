"""The staff API's call evidence: a call's whole story, its bundle, its recordings' audio."""

from __future__ import annotations

from aiohttp import web

from ivr.access.audit import viewer_of
from ivr.access.roles import requires
from ivr.api.errors import api_error
from ivr.api.params import json_response, refuse_nul
from ivr.appkeys import CALL_EVIDENCE
from ivr.evidence.call_evidence import MediaTampered, UnknownCall, UnknownRecordingKey

__all__ = ["call_bundle", "call_evidence", "recording_media"]


@requires("staff")
async def call_evidence(request: web.Request) -> web.Response:
    """``GET /api/calls/{call_sid}/evidence``: the call's whole story, in order, chain-checked."""
    refuse_nul(request)
    try:
        story = await request.config_dict[CALL_EVIDENCE].story(
            viewer_of(request), request.match_info["call_sid"], "call.evidence"
        )
    except UnknownCall as exc:
        raise api_error(404, exc.message) from exc
    return json_response(story)


@requires("staff")
async def call_bundle(request: web.Request) -> web.Response:
    """``GET /api/calls/{call_sid}/evidence.zip``: story, media, receipts, chain proof, certification."""
    refuse_nul(request)
    try:
        bundle = await request.config_dict[CALL_EVIDENCE].bundle(viewer_of(request), request.match_info["call_sid"])
    except UnknownCall as exc:
        raise api_error(404, exc.message) from exc
    return bundle.download()


@requires("staff")
async def recording_media(request: web.Request) -> web.Response:
    """``GET /api/recordings/{recording_sid}/media``: the kept audio, for playback."""
    refuse_nul(request)
    try:
        kept = await request.config_dict[CALL_EVIDENCE].audio(viewer_of(request), request.match_info["recording_sid"])
    except MediaTampered as exc:
        raise api_error(409, f"{exc}: it is not served as evidence (see ivr verify)") from exc
    except UnknownRecordingKey as exc:
        raise api_error(503, f"{exc}: it cannot be opened, so it is not served") from exc
    if kept is None:
        raise api_error(404, "no kept media for that recording (not fetched yet)")
    return kept.playback()
