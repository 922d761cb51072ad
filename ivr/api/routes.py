"""The JSON door's URL table (paths relative to ``/api``), and nothing else."""

from __future__ import annotations

from aiohttp import web

from ivr.api import access_review, agents, backlog, calls, channel_consents, consents, events, openapi, subscriptions

__all__ = ["PREFIX", "setup_routes"]

PREFIX = "/api"


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/transfers", agents.create_transfer)
    app.router.add_get("/transfers/{transfer_id}", agents.get_transfer)
    app.router.add_get("/transfers/{transfer_id}/events", agents.transfer_event_stream)
    app.router.add_get("/subjects/{phone}/consents", consents.subject_consents)
    app.router.add_get("/accounts/{account}/consents", consents.account_consents)
    app.router.add_get("/consent-events", consents.consent_events)
    app.router.add_post("/consents", channel_consents.record_consent)
    app.router.add_get("/calls/{call_sid}/evidence", calls.call_evidence)
    app.router.add_get("/calls/{call_sid}/evidence.zip", calls.call_bundle)
    app.router.add_get("/recordings/{recording_sid}/media", calls.recording_media)
    app.router.add_get("/requests", backlog.list_requests)
    app.router.add_post("/requests/{request_id}/status", backlog.change_request_status)
    app.router.add_get("/suppression", consents.suppression)
    app.router.add_get("/access-log", access_review.access_log)
    app.router.add_get("/subscriptions", subscriptions.subscriptions)
    app.router.add_post("/subscriptions", subscriptions.create_subscription)
    app.router.add_delete("/subscriptions/{subscription_id}", subscriptions.remove)
    app.router.add_post("/subscriptions/{subscription_id}/disable", subscriptions.disable_subscription)
    app.router.add_post("/subscriptions/{subscription_id}/enable", subscriptions.enable_subscription)
    app.router.add_post("/subscriptions/{subscription_id}/rotate-secret", subscriptions.rotate_subscription_secret)
    app.router.add_get("/subscriptions/{subscription_id}/dead-letters", subscriptions.subscription_dead_letters)
    app.router.add_get("/events", events.list_events)
    app.router.add_get("/events/stream", events.event_stream)
    app.router.add_get("/events/{event_id}", events.event_trail)
    app.router.add_get("/revocations/due", events.revocations_due)
    app.router.add_post("/events/{event_id}/applied", events.applied)
    app.router.add_get("/openapi.json", openapi.openapi_document)
