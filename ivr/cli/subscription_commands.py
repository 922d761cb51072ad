"""``ivr subscriptions``: who is told of decisions and requests, and how it is going."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta

import click

from ivr.cli.common import load_settings, with_conn
from ivr.integrations.subscribing import Added, BadSubscription, add_subscription, event_types, rotate, vet
from storage.deliveries import dead_letters, requeue_dead
from storage.postgres import Connection
from storage.subscriptions import Subscription, find_subscription, list_subscriptions, remove_subscription, set_disabled

__all__ = ["subscriptions"]


@click.group()
def subscriptions() -> None:
    """Subscriptions to events (consent.granted, consent.revoked, request.opened, request.status_changed)."""


@subscriptions.command("add")
@click.option("--url", required=True, help="Where events are POSTed (https; see EVENT_ALLOW_PRIVATE_TARGETS).")
@click.option("--events", "types", required=True, help="Event types, comma-separated, or * for all.")
@click.option("--name", help="Whose system this is (shown in lists and evidence); the URL if not given.")
@click.option("--ed25519", is_flag=True, help="Sign with Ed25519 (v1a) instead of HMAC-SHA256 (v1).")
def subscriptions_add(url: str, types: str, name: str | None, ed25519: bool) -> None:
    """Subscribe URL to events; print its id, then its secret (whsec_…, or whpk_… with --ed25519), once."""
    allow_private = load_settings(os.environ, need_twilio=False).event_allow_private_targets

    async def adding() -> Added:
        asked = event_types(types)
        await vet(url, name, allow_private=allow_private)
        return await with_conn(lambda conn: add_subscription(conn, url, asked, name, ed25519=ed25519))

    try:
        added = asyncio.run(adding())
    except BadSubscription as exc:
        raise click.BadParameter(exc.message) from None
    click.echo(added.id)
    click.echo(added.secret)
    click.echo(f"subscription #{added.id}: keep the secret now, it is not shown again", err=True)


@subscriptions.command("list")
@click.option("--removed", is_flag=True, help="Also those removed.")
def subscriptions_list(removed: bool) -> None:
    """Each subscription, its state and its deliveries: pending, delivered, dead (dead letters)."""
    for sub in asyncio.run(with_conn(lambda conn: list_subscriptions(conn, removed=removed))):
        click.echo(
            f"#{sub.id}  {_state(sub):<8} {sub.name}  {sub.url}  {','.join(sub.event_types)}  {sub.scheme}  "
            f"pending {sub.counts['pending']}  delivered {sub.counts['delivered']}  dead {sub.counts['dead']}"
        )


@subscriptions.command("disable")
@click.argument("subscription_id", type=int)
def subscriptions_disable(subscription_id: int) -> None:
    """Stop sending to it; its events wait (and are sent once it is enabled)."""
    _changed(subscription_id, "disabled by an operator", "disabled", "an enabled")


@subscriptions.command("enable")
@click.argument("subscription_id", type=int)
def subscriptions_enable(subscription_id: int) -> None:
    """Send to it again, beginning with what waited."""
    _changed(subscription_id, None, "enabled", "a disabled")


@subscriptions.command("rotate-secret")
@click.argument("subscription_id", type=int)
@click.option("--grace-hours", type=click.FloatRange(0, 720), help="How long the old secret signs too (default 24).")
def subscriptions_rotate(subscription_id: int, grace_hours: float | None) -> None:
    """Print a new secret; the old one signs beside it for the grace period."""
    settings = load_settings(os.environ, need_twilio=False)
    grace = timedelta(seconds=settings.event_secret_grace_s if grace_hours is None else grace_hours * 3600)

    async def rotating(conn: Connection) -> str | None:
        sub = await find_subscription(conn, subscription_id)
        return await rotate(conn, subscription_id, sub.scheme, grace) if sub else None

    secret = asyncio.run(with_conn(rotating))
    if secret is None:
        raise click.ClickException(f"no subscription #{subscription_id}")
    click.echo(secret)
    click.echo(f"subscription #{subscription_id}: the old secret signs too until {grace} from now", err=True)


@subscriptions.command("remove")
@click.argument("subscription_id", type=int)
def subscriptions_remove(subscription_id: int) -> None:
    """Stop for good: its secrets are forgotten and what was still due is dropped."""
    if not asyncio.run(with_conn(lambda conn: remove_subscription(conn, subscription_id))):
        raise click.ClickException(f"no subscription #{subscription_id}")
    click.echo(f"subscription #{subscription_id} removed")


@subscriptions.command("dead-letters")
@click.argument("subscription_id", type=int, required=False)
@click.option("--retry", is_flag=True, help="Send them again from the start of the schedule (needs ID).")
def subscriptions_dead_letters(subscription_id: int | None, retry: bool) -> None:
    """Deliveries given up after the last attempt (of one subscription, or all)."""
    if retry:
        if subscription_id is None:
            raise click.UsageError("--retry needs a SUBSCRIPTION_ID")
        requeued = asyncio.run(with_conn(lambda conn: requeue_dead(conn, subscription_id)))
        click.echo(f"{requeued} dead letters of subscription #{subscription_id} will be sent again")
        return
    for dead in asyncio.run(with_conn(lambda conn: dead_letters(conn, subscription_id, 1000))):
        click.echo(
            f"#{dead.subscription_id}  {dead.event_id}  {dead.type}  {dead.attempts} attempts  "
            f"last {dead.last_status or '-'} {dead.last_error or ''}  dead {dead.dead_at.isoformat()}"
        )


def _state(sub: Subscription) -> str:
    return "removed" if sub.removed_at else "disabled" if sub.disabled_at else "active"


def _changed(subscription_id: int, reason: str | None, done: str, wanted: str) -> None:
    if not asyncio.run(with_conn(lambda conn: set_disabled(conn, subscription_id, reason))):
        raise click.ClickException(f"no {wanted} subscription #{subscription_id}")
    click.echo(f"subscription #{subscription_id} {done}")
