"""The JSON door's URL table (paths relative to ``/api``), and nothing else."""

from __future__ import annotations

from aiohttp import web

from ivr.api import access_review, agents, backlog, calls, consents, openapi

__all__ = ["PREFIX", "setup_routes"]

PREFIX = "/api"


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/transfers", agents.create_transfer)
    app.router.add_get("/transfers/{transfer_id}", agents.get_transfer)
    app.router.add_get("/transfers/{transfer_id}/events", agents.transfer_event_stream)
    app.router.add_get("/subjects/{phone}/consents", consents.subject_consents)
    app.router.add_get("/accounts/{account}/consents", consents.account_consents)
    app.router.add_get("/consent-events", consents.consent_events)
    app.router.add_get("/calls/{call_sid}/evidence", calls.call_evidence)
    app.router.add_get("/calls/{call_sid}/evidence.zip", calls.call_bundle)
    app.router.add_get("/recordings/{recording_sid}/media", calls.recording_media)
    app.router.add_get("/requests", backlog.list_requests)
    app.router.add_post("/requests/{request_id}/status", backlog.change_request_status)
    app.router.add_get("/suppression", consents.suppression)
    app.router.add_get("/access-log", access_review.access_log)
    app.router.add_get("/openapi.json", openapi.openapi_document)
