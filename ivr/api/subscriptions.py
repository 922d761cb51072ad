"""Admins' subscription routes: the same as ``ivr subscriptions``, over the API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web

from ivr.access.roles import ADMIN, requires
from ivr.api.errors import api_error
from ivr.api.params import fits_bigint, json_response, page_size
from ivr.appkeys import PG_POOL, SETTINGS
from ivr.integrations.subscribing import BadSubscription, add_subscription, event_types, rotate, vet
from ivr.time_budget import POOL_ACQUIRE_S
from storage.deliveries import dead_letters
from storage.subscriptions import Subscription, find_subscription, list_subscriptions, remove_subscription, set_disabled

__all__ = [
    "create_subscription",
    "disable_subscription",
    "enable_subscription",
    "remove",
    "rotate_subscription_secret",
    "subscription_dead_letters",
    "subscriptions",
]


@requires(ADMIN)
async def subscriptions(request: web.Request) -> web.Response:
    """``GET /api/subscriptions``: every live subscription, with its delivery counts."""
    async with request.config_dict[PG_POOL].acquire(timeout=POOL_ACQUIRE_S) as conn:
        found = await list_subscriptions(conn)
    return json_response({"subscriptions": [view(s) for s in found]})


@requires(ADMIN)
async def create_subscription(request: web.Request) -> web.Response:
    """``POST /api/subscriptions`` ``{url, events, name?, ed25519?}``: 201 with the secret, shown once."""
    try:
        body = await request.json()
        url, asked, name, ed25519 = body["url"], body["events"], body.get("name"), body.get("ed25519", False)
        if not isinstance(url, str) or not isinstance(asked, list) or not all(isinstance(t, str) for t in asked):
            raise TypeError("url, events")
        if not (name is None or isinstance(name, str)) or not isinstance(ed25519, bool):
            raise TypeError("name, ed25519")
    except (ValueError, KeyError, TypeError) as exc:
        raise api_error(400, "send JSON with url, events (a list of types) and optionally name and ed25519") from exc
    allow_private = request.config_dict[SETTINGS].event_allow_private_targets
    try:
        types = event_types(",".join(asked))
        await vet(url, name, allow_private=allow_private)
    except BadSubscription as exc:
        raise api_error(422, exc.message) from exc
    async with request.config_dict[PG_POOL].acquire(timeout=POOL_ACQUIRE_S) as conn:
        added = await add_subscription(conn, url, types, name, ed25519=ed25519)
        created = await find_subscription(conn, added.id)
    assert created is not None
    return json_response(view(created) | {"secret": added.secret}, status=201)


@requires(ADMIN)
async def disable_subscription(request: web.Request) -> web.Response:
    """``POST /api/subscriptions/{id}/disable``: nothing is sent to it; its events wait."""
    return await _set_disabled(request, "disabled by an admin")


@requires(ADMIN)
async def enable_subscription(request: web.Request) -> web.Response:
    """``POST /api/subscriptions/{id}/enable``: sent to again, beginning with what waited."""
    return await _set_disabled(request, None)


@requires(ADMIN)
async def rotate_subscription_secret(request: web.Request) -> web.Response:
    """``POST /api/subscriptions/{id}/rotate-secret``: 201 with the new secret; the old one signs too for the grace."""
    subscription_id = _id(request)
    grace = timedelta(seconds=request.config_dict[SETTINGS].event_secret_grace_s)
    async with request.config_dict[PG_POOL].acquire(timeout=POOL_ACQUIRE_S) as conn:
        sub = await find_subscription(conn, subscription_id)
        secret = await rotate(conn, subscription_id, sub.scheme, grace) if sub else None
        rotated = await find_subscription(conn, subscription_id)
    if secret is None or rotated is None:
        raise api_error(404, "no such subscription")
    return json_response(view(rotated) | {"secret": secret, "previous_secret_until": rotated.previous_until}, 201)


@requires(ADMIN)
async def remove(request: web.Request) -> web.Response:
    """``DELETE /api/subscriptions/{id}``: stopped for good, its secrets forgotten."""
    subscription_id = _id(request)
    async with request.config_dict[PG_POOL].acquire(timeout=POOL_ACQUIRE_S) as conn:
        removed = await remove_subscription(conn, subscription_id)
        sub = await find_subscription(conn, subscription_id)
    if not removed or sub is None:
        raise api_error(404, "no such subscription")
    return json_response(view(sub))


@requires(ADMIN)
async def subscription_dead_letters(request: web.Request) -> web.Response:
    """``GET /api/subscriptions/{id}/dead-letters``: deliveries given up after the last attempt."""
    subscription_id = _id(request)
    limit = page_size(request.query.get("limit", "100"))
    async with request.config_dict[PG_POOL].acquire(timeout=POOL_ACQUIRE_S) as conn:
        if await find_subscription(conn, subscription_id) is None:
            raise api_error(404, "no such subscription")
        dead = await dead_letters(conn, subscription_id, limit)
    return json_response({"dead_letters": [d.__dict__ for d in dead]})


def view(sub: Subscription) -> dict[str, Any]:
    """A subscription as the API shows it: never its secrets."""
    state = "removed" if sub.removed_at else "disabled" if sub.disabled_at else "active"
    return {
        "id": sub.id,
        "name": sub.name,
        "url": sub.url,
        "events": list(sub.event_types),
        "scheme": sub.scheme,
        "state": state,
        "created_at": sub.created_at,
        "disabled_at": sub.disabled_at,
        "disabled_reason": sub.disabled_reason,
        "deliveries": sub.counts,
    }


async def _set_disabled(request: web.Request, reason: str | None) -> web.Response:
    subscription_id = _id(request)
    async with request.config_dict[PG_POOL].acquire(timeout=POOL_ACQUIRE_S) as conn:
        changed = await set_disabled(conn, subscription_id, reason)
        sub = await find_subscription(conn, subscription_id)
    if sub is None or sub.removed_at is not None:
        raise api_error(404, "no such subscription")
    if not changed:
        raise api_error(409, f"subscription #{subscription_id} is already {'disabled' if reason else 'enabled'}")
    return json_response(view(sub))


def _id(request: web.Request) -> int:
    text = request.match_info["subscription_id"]
    if not (text.isascii() and text.isdigit()) or not fits_bigint(int(text)):
        raise api_error(404, "no such subscription")
    return int(text)
