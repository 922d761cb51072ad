"""What a subject's consent is, derived from the ledger's rows (docs/consent-rules.md, CR-4).

The latest decision reaching the subject and purpose, at or before ``as_of``, decides
(``deciding_decision``, migration 0014: its own decisions, and the revocations made for
its numbers or accounts or from its number); a one-time (per-call) approval counts only
until its call has ended. With no decision, an opt-out purpose (CPNI) is deemed granted
only once its opt-out window has passed since the subject was first given the complete
notice; until then, or for an opt-in purpose, nothing is granted. Revocations count
from the moment they are stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from uuid import UUID

from storage.postgres import Connection

__all__ = ["Basis", "ConsentState", "Status", "consent_state", "consent_states"]


class Status(StrEnum):
    GRANTED = "granted"
    REVOKED = "revoked"
    NEVER_ASKED = "never_asked"
    DEEMED_GRANTED = "deemed_granted"  # opt-out basis: notice given, window passed, no restriction
    NOTICE_PENDING = "notice_pending"  # opt-out basis: notice given, window still open


class Basis(StrEnum):
    EXPLICIT = "explicit"  # the subject's own decision
    DEEMED_AFTER_NOTICE = "deemed_after_notice"
    NONE = "none"


@dataclass(frozen=True)
class ConsentState:
    subject: str
    purpose: str
    as_of: datetime
    status: Status
    basis: Basis
    since: datetime | None
    event_id: UUID | None  # the decision that decided it
    notice_id: int | None  # the notice an opt-out state rests on
    honor_by: date | None  # a revocation's honor-by date, if it has one
    scope: str = "standing"  # "call": a one-time approval, in effect until its call ends
    decided_for: str | None = None  # the subject the deciding decision was made for (a linked one, or this)


async def consent_states(
    conn: Connection, subject: str, rules: Mapping[str, int | None], *, as_of: datetime
) -> list[ConsentState]:
    """``subject``'s state for every purpose of ``rules`` (purpose -> opt-out days), by purpose."""
    return [
        await consent_state(conn, subject, purpose, as_of=as_of, opt_out_days=days)
        for purpose, days in sorted(rules.items())
    ]


async def consent_state(
    conn: Connection,
    subject: str,
    purpose: str,
    *,
    as_of: datetime,
    opt_out_days: int | None = None,
) -> ConsentState:
    decision = await conn.fetchrow(
        "SELECT event_id, action, recorded_at, honor_by, scope, subject FROM deciding_decision($1, $2, $3)",
        subject,
        purpose,
        as_of,
    )
    if decision is not None:
        status = Status.GRANTED if decision["action"] == "grant" else Status.REVOKED
        return ConsentState(
            subject,
            purpose,
            as_of,
            status,
            Basis.EXPLICIT,
            decision["recorded_at"],
            decision["event_id"],
            None,
            decision["honor_by"],
            decision["scope"],
            decision["subject"],
        )
    if opt_out_days is None:
        return ConsentState(subject, purpose, as_of, Status.NEVER_ASKED, Basis.NONE, None, None, None, None)
    return await _opt_out_state(conn, subject, purpose, as_of, opt_out_days)


async def _opt_out_state(
    conn: Connection, subject: str, purpose: str, as_of: datetime, opt_out_days: int
) -> ConsentState:
    notice = await conn.fetchrow(
        """
        SELECT id, given_at FROM notices
        WHERE notice = $2 AND given_at <= $3
          -- one array, not "= $1 OR IN (subquery)": that OR cannot use notices_caller, so
          -- every lookup read all the notices there are
          AND caller_number = ANY (
                array_prepend($1::text, ARRAY(SELECT phone FROM customer_phones WHERE account_number = $1)))
        ORDER BY given_at, id LIMIT 1
        """,
        subject,
        purpose,
        as_of,
    )
    if notice is None:
        return ConsentState(subject, purpose, as_of, Status.NEVER_ASKED, Basis.NONE, None, None, None, None)
    deemed_from = notice["given_at"] + timedelta(days=opt_out_days)
    if as_of >= deemed_from:
        return ConsentState(
            subject,
            purpose,
            as_of,
            Status.DEEMED_GRANTED,
            Basis.DEEMED_AFTER_NOTICE,
            deemed_from,
            None,
            notice["id"],
            None,
        )
    return ConsentState(
        subject, purpose, as_of, Status.NOTICE_PENDING, Basis.NONE, notice["given_at"], None, notice["id"], None
    )
