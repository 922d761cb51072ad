"""The ``web.AppKey`` of every resource the doors share, typed, in one place.

Resources live on the root application (opened and closed by ``ivr.resources``);
a door's handlers reach them through ``request.config_dict``. A door's own keys
(the voice door's call desk) live in that door.
"""

from __future__ import annotations

import asyncpg
from aiohttp import web
from redis.asyncio import Redis

from ivr.call_control import CallControl
from ivr.evidence.call_evidence import CallEvidence
from ivr.evidence.checkpoints import Checkpointer, CheckpointSigner
from ivr.evidence.recording_fetcher import RecordingFetcher
from ivr.flow_catalog import FlowCatalog
from ivr.integrations.delivery import Deliverer
from ivr.integrations.jetstream import Publisher
from ivr.ops.metrics import Metrics
from ivr.settings import Settings
from ivr.transfer_desk import TransferDesk
from ivr.transfer_feed import TransferFeed
from storage.migrator import Migration
from storage.rate_limits import RateLimiter
from storage.recordings import MediaStore
from storage.sessions import CallSessions
from storage.web_sessions import WebSessions

SETTINGS = web.AppKey("settings", Settings)
DATABASE_DSN = web.AppKey("database_dsn", str)  # the service's own login (role ivr_app)
OWNER_DSN = web.AppKey("owner_dsn", str)  # the tables' owner: migrations, retention, the customer directory
REDIS_URL = web.AppKey("redis_url", str)
PG_POOL: web.AppKey[asyncpg.Pool[asyncpg.Record]] = web.AppKey("pg_pool", asyncpg.Pool)
REDIS = web.AppKey("redis", Redis)
SESSIONS = web.AppKey("sessions", CallSessions)
FLOWS = web.AppKey("flows", FlowCatalog)
APPLIED_MIGRATIONS = web.AppKey("applied_migrations", list[Migration])
RECORDING_FETCHER = web.AppKey("recording_fetcher", RecordingFetcher)
CALL_CONTROL = web.AppKey("call_control", CallControl)
TRANSFER_DESK = web.AppKey("transfer_desk", TransferDesk)
TRANSFER_FEED = web.AppKey("transfer_feed", TransferFeed)  # live transfer news, one subscriber per process
WEB_SESSIONS = web.AppKey("web_sessions", WebSessions)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
METRICS = web.AppKey("metrics", Metrics)
MEDIA_STORE = web.AppKey("media_store", MediaStore)
CALL_EVIDENCE = web.AppKey("call_evidence", CallEvidence)
CHECKPOINT_SIGNER = web.AppKey("checkpoint_signer", CheckpointSigner)
CHECKPOINTER = web.AppKey("checkpointer", Checkpointer)
EVENT_DELIVERER = web.AppKey("event_deliverer", Deliverer)  # events to subscribers (its own pool)
EVENT_PUBLISHER = web.AppKey("event_publisher", Publisher)  # events to NATS JetStream, when EVENTS_NATS_URL is set
