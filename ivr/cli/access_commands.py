"""``ivr tokens`` and ``ivr users``: API tokens and staff accounts (secrets kept only as hashes)."""

from __future__ import annotations

import asyncio

import click

from ivr.access.passwords import hash_secret
from ivr.cli.common import (
    with_conn,
)
from storage.tokens import ROLES, create_token, list_tokens, revoke_token
from storage.users import create_user

__all__ = ["tokens", "users"]


@click.group()
def tokens() -> None:
    """API tokens for agents, staff and admins (stored only as hashes)."""


@tokens.command("create")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--name", required=True, help="Whose token this is (shown in evidence and logs).")
def tokens_create(role: str, name: str) -> None:
    """Create a token and print it once; it cannot be shown again."""
    token, secret = asyncio.run(with_conn(lambda conn: create_token(conn, name, role)))
    click.echo(secret)
    click.echo(f"token #{token.id} for {name} ({role}); keep it now, it is not stored", err=True)


@tokens.command("list")
def tokens_list() -> None:
    for token in asyncio.run(with_conn(list_tokens)):
        state = f"revoked {token.revoked_at.isoformat()}" if token.revoked_at else "live"
        click.echo(f"#{token.id}  {token.role:<6} {token.name}  created {token.created_at.isoformat()}  {state}")


@tokens.command("revoke")
@click.argument("token_id", type=int)
def tokens_revoke(token_id: int) -> None:
    """Revoke token #TOKEN_ID; the next request with it is refused."""
    if not asyncio.run(with_conn(lambda conn: revoke_token(conn, token_id))):
        raise click.ClickException(f"no live token #{token_id}")
    click.echo(f"token #{token_id} revoked")


@click.group()
def users() -> None:
    """Staff accounts for the web pages (password sign-in)."""


@users.command("create")
@click.option("--name", "username", required=True, help="Username (a-z, 0-9, . _ -).")
@click.option("--role", type=click.Choice(["staff", "admin"]), default="staff", show_default=True)
@click.password_option(help="Asked for when not given.")
def users_create(username: str, role: str, password: str) -> None:
    """Create a staff account; its password is kept only as a salted scrypt hash."""
    if len(password) < 12:
        raise click.ClickException("use a password of at least 12 characters")
    user_id = asyncio.run(with_conn(lambda conn: create_user(conn, username, role, hash_secret(password))))
    click.echo(f"user #{user_id} {username} ({role}) created")
