"""The ``ivr`` command: one module per command group, gathered here.

Exit codes: 0 ok, 1 a problem found (a broken ledger, a bad flow), 2 bad usage or input.
"""

from __future__ import annotations

import click

from ivr.cli.access_commands import tokens, users
from ivr.cli.customer_commands import customers
from ivr.cli.evidence_commands import checkpoint, consent, export, verify
from ivr.cli.flow_commands import flows, simulate
from ivr.cli.proof_commands import prove
from ivr.cli.retention_commands import holds, retention
from ivr.cli.serve_commands import migrate, serve
from ivr.cli.subscription_commands import subscriptions
from storage.postgres import RoleTooStrong

__all__ = ["main"]


class _BadConfiguration(click.ClickException):
    exit_code = 2


class _Commands(click.Group):
    """Every command; a database login too strong to serve with is bad configuration (exit 2)."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except RoleTooStrong as exc:
            raise _BadConfiguration(str(exc)) from None


@click.group(cls=_Commands)
def main() -> None:
    """Consent IVR: capture, prove and look up callers' consent over Twilio Voice."""


for command in (
    serve,
    migrate,
    flows,
    simulate,
    verify,
    checkpoint,
    prove,
    consent,
    export,
    retention,
    holds,
    tokens,
    users,
    customers,
    subscriptions,
):
    main.add_command(command)
