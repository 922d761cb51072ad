"""The URL table, and nothing else."""

from __future__ import annotations

from aiohttp import web

from ivr import health, keys, observability, pages, staff_pages, webhooks
from ivr.api import openapi, staff, transfers
from ivr.twiml import (
    ANSWER_PATH,
    CONNECTED_PATH,
    NO_INPUT_PATH,
    RECORDING_PATH,
    RECORDING_STATUS_PATH,
)

__all__ = ["setup_routes"]

VOICE_PATH = "/twilio/voice"
STATUS_PATH = "/twilio/status"


def setup_routes(app: web.Application) -> None:
    app.router.add_post(VOICE_PATH, webhooks.incoming_call)
    app.router.add_post(ANSWER_PATH, webhooks.answer)
    app.router.add_post(NO_INPUT_PATH, webhooks.no_input)
    app.router.add_post(RECORDING_PATH, webhooks.recording)
    app.router.add_post(RECORDING_STATUS_PATH, webhooks.recording_status)
    app.router.add_post(CONNECTED_PATH, webhooks.connected)
    app.router.add_post(STATUS_PATH, webhooks.call_status)
    app.router.add_post("/api/transfers", transfers.create_transfer)
    app.router.add_get("/api/transfers/{transfer_id}", transfers.get_transfer)
    app.router.add_get("/api/transfers/{transfer_id}/events", transfers.transfer_event_stream)
    app.router.add_get("/api/subjects/{phone}/consents", staff.subject_consents)
    app.router.add_get("/api/consent-events", staff.consent_events)
    app.router.add_get("/api/calls/{call_sid}/evidence", staff.call_evidence)
    app.router.add_get("/api/calls/{call_sid}/evidence.zip", staff.call_bundle)
    app.router.add_get("/api/recordings/{recording_sid}/media", staff.recording_media)
    app.router.add_get("/api/requests", staff.list_requests)
    app.router.add_post("/api/requests/{request_id}/status", staff.change_request_status)
    app.router.add_get("/api/suppression", staff.suppression)
    app.router.add_get("/api/access-log", staff.access_log)
    app.router.add_get("/api/openapi.json", openapi.openapi_document)
    app.router.add_get("/agent", pages.agent_page)
    app.router.add_get("/staff/login", staff_pages.login_form)
    app.router.add_post("/staff/login", staff_pages.login)
    app.router.add_post("/staff/logout", staff_pages.logout)
    app.router.add_get("/staff", staff_pages.search_page)
    app.router.add_get("/staff/people/{subject}", staff_pages.person_page)
    app.router.add_get("/staff/calls/{call_sid}", staff_pages.call_page)
    app.router.add_get("/staff/calls/{call_sid}/evidence.zip", staff_pages.call_bundle_page)
    app.router.add_get("/staff/recordings/{recording_sid}", staff_pages.recording_audio)
    app.router.add_get("/staff/requests", staff_pages.requests_page)
    app.router.add_post("/staff/requests/{request_id}/status", staff_pages.request_status)
    app.router.add_get("/staff/access-log", staff_pages.access_log_page)
    app.router.add_get("/healthz", health.healthz)
    if app[keys.SETTINGS].metrics_enabled:
        app.router.add_get("/metrics", observability.metrics_page)
    app.router.add_get("/readyz", health.readyz)
