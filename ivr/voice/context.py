"""The voice door's resources: the call desk, the signature check and the TwiML renderer.

Opened on the root application (after the pools they use, closed before them: the
desk's group-commit appender must flush while Postgres is still there), reached by
the door's handlers through ``request.config_dict``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from ivr import appkeys
from ivr.access.pins import load_pepper
from ivr.ops.tasks import in_background
from ivr.time_budget import POOL_ACQUIRE_S
from ivr.voice.call_desk import CallDesk
from ivr.voice.engine_effects import EngineEffects
from ivr.voice.signatures import SignatureCheck
from ivr.voice.twiml import TwimlRenderer
from storage.appender import appender
from storage.deferred_endings import DeferredEndings

__all__ = ["CALL_DESK", "RENDERER", "SIGNATURES", "call_desk_ctx"]

log = structlog.get_logger(__name__)

CALL_DESK = web.AppKey("call_desk", CallDesk)
SIGNATURES = web.AppKey("signatures", SignatureCheck)
RENDERER = web.AppKey("twiml_renderer", TwimlRenderer)

# How often a process looks for call endings that waited for Postgres.
DEFERRED_ENDINGS_EVERY_S = 5.0


async def _store_deferred_endings(desk: CallDesk) -> None:
    while True:
        await asyncio.sleep(DEFERRED_ENDINGS_EVERY_S)
        try:
            stored = await desk.store_deferred_endings()
        except Exception:  # noqa: BLE001 - Redis away too: the next round tries again
            log.exception("deferred_endings_not_stored")
            continue
        if stored:
            log.info("deferred_endings_stored", count=stored)


async def call_desk_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[appkeys.SETTINGS]
    pool = app[appkeys.PG_POOL]
    shared_key = settings.twilio_webhook_shared_key
    app[SIGNATURES] = SignatureCheck(
        settings.auth_token,
        settings.base_url,
        shared_key=shared_key.get_secret_value() if shared_key else None,
        shared_key_id=settings.twilio_webhook_shared_key_id,
    )
    pepper = settings.pin_pepper.get_secret_value() if settings.pin_pepper else None
    pins = load_pepper(pepper, settings.pin_pepper_file, settings.data_dir)
    renderer = app[RENDERER] = TwimlRenderer(settings.base_url, {"agents": settings.agent_target})
    async with appender(pool, acquire_timeout_s=POOL_ACQUIRE_S) as writing:
        desk = app[CALL_DESK] = CallDesk(
            pool,
            app[appkeys.SESSIONS],
            app[appkeys.FLOWS],
            renderer,
            EngineEffects(pool, pins, app[appkeys.METRICS]),
            app[appkeys.TRANSFER_DESK],
            app[appkeys.METRICS],
            writing,
            DeferredEndings(app[appkeys.REDIS]),
            recording_announced=app[appkeys.RECORDING_FETCHER].wake,
            business_tz=settings.business_timezone,
        )
        async with in_background(_store_deferred_endings(desk), "deferred-endings"):
            yield
