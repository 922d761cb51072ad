"""The ``ivr`` command: one module per command group, gathered here.

Exit codes: 0 ok, 1 a problem found (a broken ledger, a bad flow), 2 bad usage or input.
"""

from __future__ import annotations

import click

from ivr.cli.access_commands import tokens, users
from ivr.cli.customer_commands import customers
from ivr.cli.evidence_commands import checkpoint, consent, export, verify
from ivr.cli.flow_commands import flows, simulate
from ivr.cli.retention_commands import holds, retention
from ivr.cli.serve_commands import migrate, serve

__all__ = ["main"]


@click.group()
def main() -> None:
    """Consent IVR: capture, prove and look up callers' consent over Twilio Voice."""


for command in (
    serve,
    migrate,
    flows,
    simulate,
    verify,
    checkpoint,
    consent,
    export,
    retention,
    holds,
    tokens,
    users,
    customers,
):
    main.add_command(command)
