"""``ivr tokens`` and ``ivr users``: API tokens and staff accounts (secrets kept only as hashes)."""

from __future__ import annotations

import asyncio

import click

from ivr.access.passwords import hash_password
from ivr.cli.common import (
    with_conn,
)
from storage.postgres import Connection
from storage.subscriptions import find_subscription
from storage.tokens import INTEGRATION, ROLES, Token, create_token, list_tokens, revoke_token
from storage.users import create_user, disable_user, enable_user, set_password

__all__ = ["tokens", "users"]


@click.group()
def tokens() -> None:
    """API tokens for agents, staff, admins and integrations (stored only as hashes)."""


@tokens.command("create")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--name", required=True, help="Whose token this is (shown in evidence and logs).")
@click.option("--subscription", "subscription_id", type=int, help="An integration token's subscription (needed).")
def tokens_create(role: str, name: str, subscription_id: int | None) -> None:
    """Create a token and print it once; it cannot be shown again."""
    if (role == INTEGRATION) != (subscription_id is not None):
        raise click.UsageError("--subscription goes with --role integration, and only with it")

    async def create(conn: Connection) -> tuple[Token, str]:
        if subscription_id is not None and await find_subscription(conn, subscription_id) is None:
            raise click.BadParameter(f"no subscription #{subscription_id}", param_hint="--subscription")
        return await create_token(conn, name, role, subscription_id)

    token, secret = asyncio.run(with_conn(create))
    click.echo(secret)
    click.echo(f"token #{token.id} for {name} ({role}); keep it now, it is not stored", err=True)


@tokens.command("list")
def tokens_list() -> None:
    for token in asyncio.run(with_conn(list_tokens)):
        state = f"revoked {token.revoked_at.isoformat()}" if token.revoked_at else "live"
        scope = f" (subscription #{token.subscription_id})" if token.subscription_id else ""
        click.echo(f"#{token.id}  {token.role:<6} {token.name}{scope}  created {token.created_at.isoformat()}  {state}")


@tokens.command("revoke")
@click.argument("token_id", type=int)
def tokens_revoke(token_id: int) -> None:
    """Revoke token #TOKEN_ID; the next request with it, or by a page session opened with it, is refused."""
    if not asyncio.run(with_conn(lambda conn: revoke_token(conn, token_id))):
        raise click.ClickException(f"no live token #{token_id}")
    click.echo(f"token #{token_id} revoked")


@click.group()
def users() -> None:
    """Staff accounts for the web pages (password sign-in)."""


# Staff passwords are typed by people: long enough that guessing online is hopeless.
MIN_PASSWORD_LENGTH = 12


def _long_enough(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise click.ClickException(f"use a password of at least {MIN_PASSWORD_LENGTH} characters")


@users.command("create")
@click.option("--name", "username", required=True, help="Username (a-z, 0-9, . _ -).")
@click.option("--role", type=click.Choice(["staff", "admin"]), default="staff", show_default=True)
@click.password_option(help="Asked for when not given.")
def users_create(username: str, role: str, password: str) -> None:
    """Create a staff account; its password is kept only as a salted scrypt hash."""
    _long_enough(password)

    async def create(conn: Connection) -> int:
        return await create_user(conn, username, role, await hash_password(password))

    user_id = asyncio.run(with_conn(create))
    click.echo(f"user #{user_id} {username} ({role}) created")


@users.command("disable")
@click.argument("username")
def users_disable(username: str) -> None:
    """Stop USERNAME signing in; their open sessions end at their next page."""
    if not asyncio.run(with_conn(lambda conn: disable_user(conn, username))):
        raise click.ClickException(f"no enabled user {username}")
    click.echo(f"user {username} disabled; their sessions have ended")


@users.command("enable")
@click.argument("username")
def users_enable(username: str) -> None:
    """Let USERNAME sign in again (sessions ended by the disable stay ended)."""
    if not asyncio.run(with_conn(lambda conn: enable_user(conn, username))):
        raise click.ClickException(f"no disabled user {username}")
    click.echo(f"user {username} enabled")


@users.command("passwd")
@click.argument("username")
@click.password_option(help="Asked for when not given.")
def users_passwd(username: str, password: str) -> None:
    """Set USERNAME's password; every session they have open ends at its next page."""
    _long_enough(password)

    async def change(conn: Connection) -> bool:
        return await set_password(conn, username, await hash_password(password))

    if not asyncio.run(with_conn(change)):
        raise click.ClickException(f"no user {username}")
    click.echo(f"password of {username} set; their sessions have ended")
