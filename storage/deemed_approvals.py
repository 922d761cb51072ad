"""CPNI approval assumed after the opt-out window: noted as chained evidence when it happens.

Nothing is inserted at the moment a 30-day window runs out, so a scan looks for it: a
number whose first notice of the purpose is older than the window, with no decision that
reaches it (``deciding_decision``), gets a ``deemed_approvals`` row, and with it (migration
0025) a ``cpni.deemed_granted`` event. Numbers only: an account is deemed through its
numbers' notices when it is asked about (storage/consent_state.py).
"""

from __future__ import annotations

from datetime import timedelta

from storage.ledger import EvidenceRow, append
from storage.postgres import Connection

__all__ = ["note_deemed_approvals"]

# Numbers noted per scan: a backlog (the first scan after a deploy) is taken in parts.
SCAN_BATCH = 500


async def note_deemed_approvals(conn: Connection, purpose: str, opt_out_days: int, limit: int = SCAN_BATCH) -> int:
    """Chain a deemed approval for each number whose window has run out; how many were noted."""
    rows = await conn.fetch(
        r"""
        SELECT * FROM (
          SELECT DISTINCT ON (n.caller_number) n.id, n.caller_number, n.given_at
          FROM notices n
          WHERE n.notice = $1 AND n.given_at <= now() - make_interval(days => $2)
            AND n.caller_number ~ '^\+[1-9][0-9]{6,14}$'
            AND NOT EXISTS (SELECT FROM deemed_approvals d WHERE d.subject = n.caller_number AND d.purpose = $1)
          ORDER BY n.caller_number, n.given_at, n.id
        ) first_notice
        WHERE NOT EXISTS (SELECT FROM deciding_decision(first_notice.caller_number, $1, now()))
        LIMIT $3
        """,
        purpose,
        opt_out_days,
        limit,
    )
    noted = [
        EvidenceRow(
            "deemed_approvals",
            {
                "subject": row["caller_number"],
                "purpose": purpose,
                "notice_id": row["id"],
                "notice_given_at": row["given_at"].isoformat(),
                "deemed_from": (row["given_at"] + timedelta(days=opt_out_days)).isoformat(),
            },
        )
        for row in rows
    ]
    await append(conn, noted)
    return len(noted)
