"""The pages door's URL table (paths relative to ``/staff``), and nothing else."""

from __future__ import annotations

from aiohttp import web

from ivr.staff import pages, sign_in

__all__ = ["PREFIX", "setup_routes"]

PREFIX = "/staff"


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/login", sign_in.login_form)
    app.router.add_post("/login", sign_in.login)
    app.router.add_post("/logout", sign_in.logout)
    app.router.add_get("", pages.search_page)  # the bare /staff people bookmark
    app.router.add_get("/", pages.search_page)
    app.router.add_get("/people/{subject}", pages.person_page)
    app.router.add_get("/calls/{call_sid}", pages.call_page)
    app.router.add_get("/calls/{call_sid}/evidence.zip", pages.call_bundle_page)
    app.router.add_get("/recordings/{recording_sid}", pages.recording_audio)
    app.router.add_get("/requests", pages.requests_page)
    app.router.add_post("/requests/{request_id}/status", pages.request_status)
    app.router.add_get("/access-log", pages.access_log_page)
    app.router.add_get("/revocations", pages.revocations_page)
