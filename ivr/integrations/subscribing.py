"""Adding a subscription and rotating its secret: what ``ivr subscriptions`` and the admins' API share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from ivr.integrations.signing import Scheme, new_secret
from ivr.integrations.targets import TargetRefused, check_target
from storage.outbox import EventType
from storage.postgres import Connection
from storage.subscriptions import create_subscription, rotate_secret

__all__ = ["Added", "BadSubscription", "add_subscription", "event_types", "rotate", "vet"]

# Names are for people reading lists and evidence; a URL's length is the HTTP norm's.
MAX_NAME = 200
MAX_URL = 2048


class BadSubscription(Exception):
    """The subscription asked for cannot be made; ``message`` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Added:
    id: int
    secret: str  # what the receiver verifies with: the whsec_ secret, or the whpk_ public key


def event_types(text: str) -> list[str]:
    """``consent.revoked,request.opened`` -> the types, each one we emit (``*`` for all)."""
    known = [t.value for t in EventType]
    asked = [part.strip() for part in text.split(",") if part.strip()]
    if asked == ["*"]:
        return known
    unknown = [t for t in asked if t not in known]
    if not asked or unknown:
        raise BadSubscription(f"events must be some of {', '.join(known)} (or *), not {', '.join(unknown) or 'none'}")
    return list(dict.fromkeys(asked))


async def vet(url: str, name: str | None, *, allow_private: bool) -> None:
    """Refuse what cannot be a subscription's URL or name (its host is resolved: no connection held)."""
    if len(url) > MAX_URL or (name is not None and not 0 < len(name) <= MAX_NAME) or "\x00" in url + (name or ""):
        raise BadSubscription(f"url must be at most {MAX_URL} characters and name 1 to {MAX_NAME}")
    try:
        await check_target(url, allow_private=allow_private)
    except TargetRefused as exc:
        raise BadSubscription(f"url {exc.message}") from None


async def add_subscription(conn: Connection, url: str, types: list[str], name: str | None, *, ed25519: bool) -> Added:
    """Make the subscription (its URL ``vet``-ted first) with a new secret."""
    scheme = Scheme.ED25519 if ed25519 else Scheme.HMAC_SHA256
    secret = new_secret(scheme)
    new_id = await create_subscription(conn, name or url, url, types, scheme.value, secret.stored)
    return Added(new_id, secret.shown)


async def rotate(conn: Connection, subscription_id: int, scheme: str, grace: timedelta) -> str | None:
    """A new secret for the subscription (the old one signs too for ``grace``); None if there is none."""
    secret = new_secret(Scheme(scheme))
    return secret.shown if await rotate_secret(conn, subscription_id, secret.stored, grace) else None
