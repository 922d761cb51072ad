"""Rechecking retention: was each removal a tombstone records allowed when it was made?

A tombstone's justification (``storage.retention.justification``) is chained with it,
so it cannot change after the run. What it claims is rechecked here, as of the run's
``periods.as_of``, with its default and per-purpose periods, against what the database
and the signed checkpoints still prove:

(a) the run is as of its own time (an ``as_of`` ahead of ``ran_at`` is forged);
(b) each call is older than the default period;
(c) each decision was superseded by a later decision (a later ledger entry) of the same
    purpose and subject — the row itself if it is kept, else a decision some run's
    justification records as removed — for longer than its purpose's period;
(d) the justification lists exactly the calls and decisions the run removed;
(e) nobody it names was on hold when it ran, counting an account's numbers;
(f) no call of it opened a request;
(g) no time it claims for an entry is earlier than a signed checkpoint that shows the
    entry did not exist yet.

What it cannot prove: a removed row is gone, so a justification written by hand rather
than by ``remove`` can still misname a removed call's caller or a decision's subject
(only the checks above bound it). The recheck proves that what was chained is
consistent; ``remove`` is what makes it true. And a run is held to the periods its
tombstone records, not to a policy: comparing those with the policy of the day is left
to the auditor.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from storage.postgres import Connection
from storage.retention import salted_digest

__all__ = ["NotAllowed", "RetentionAudit", "SignedTime", "recheck_retention"]

# A real run is as of now; the as-of comes from the runner's clock and ran_at from the
# database's, so they may differ by a clock's drift, never by days.
AS_OF_SLACK = timedelta(minutes=5)
# The checkpoint signer's clock against the database's (both servers', set by NTP).
CLOCK_TOLERANCE = timedelta(seconds=60)
_PREFETCH = 20  # runs at a time: a justification lists every call the run removed
_LISTED = ("calls", "consent_events")  # the kinds a justification lists


@dataclass(frozen=True)
class SignedTime:
    """A signed checkpoint's size and time: no entry beyond ``size`` existed before ``time``."""

    size: int
    time: datetime
    label: str


@dataclass(frozen=True)
class NotAllowed:
    """One reason a run's removal was not allowed."""

    run_id: int
    detail: str


@dataclass(frozen=True)
class RetentionAudit:
    not_allowed: tuple[NotAllowed, ...]  # the first ``max_listed`` of them
    count: int  # all of them
    checked: int  # runs rechecked
    unjustified: tuple[int, ...]  # runs made before justifications (migration 0017)


class _Malformed(Exception):
    pass


@dataclass(frozen=True)
class _Decision:
    seq: int
    purpose: str
    subject: str
    recorded_at: datetime
    superseded_by: int | None
    superseded_at: datetime | None


@dataclass(frozen=True)
class _Call:
    call_sid: str
    started_at: datetime
    caller: str
    ledger_seq: int | None
    decisions: tuple[_Decision, ...]


@dataclass(frozen=True)
class _Run:
    id: int
    ran_at: datetime
    as_of: datetime
    default_days: int
    purposes: Mapping[str, int]
    salt: str
    calls: tuple[_Call, ...]

    def period(self, purpose: str) -> timedelta:
        return timedelta(days=self.purposes.get(purpose, self.default_days))

    def decisions(self) -> Iterator[_Decision]:
        for call in self.calls:
            yield from call.decisions


async def recheck_retention(
    conn: Connection, signed: Sequence[SignedTime], *, max_listed: int = 1_000
) -> RetentionAudit:
    """Every retention run with a justification, rechecked (call inside one snapshot)."""
    audit = _Audit(_Clock(signed), max_listed)
    query = "SELECT id, ran_at, periods, justification FROM retention_runs ORDER BY id"
    async for row in conn.cursor(query, prefetch=_PREFETCH):
        if row["justification"] is None:
            audit.unjustified.append(row["id"])
            continue
        audit.checked += 1
        try:
            run = _parse(row)
        except _Malformed as exc:
            audit.refuse(row["id"], f"its justification cannot be read: {exc}")
            continue
        await audit.recheck(conn, run)
    audit.settle()
    return RetentionAudit(tuple(audit.listed), audit.count, audit.checked, tuple(audit.unjustified))


class _Clock:
    """The signed checkpoints as lower bounds on when each entry was appended."""

    def __init__(self, signed: Sequence[SignedTime]) -> None:
        ordered = sorted(signed, key=lambda s: s.size)
        self.sizes = [s.size for s in ordered]
        self.newest: list[SignedTime] = []  # the newest of the first i+1 checkpoints
        for s in ordered:
            self.newest.append(s if not self.newest or s.time > self.newest[-1].time else self.newest[-1])

    def not_before(self, seq: int | None) -> SignedTime | None:
        """The newest checkpoint whose tree did not yet hold entry ``seq``."""
        below = bisect.bisect_left(self.sizes, seq) if seq is not None else 0
        return self.newest[below - 1] if below else None

    def too_early(self, seq: int | None, claimed: datetime) -> str | None:
        bound = self.not_before(seq)
        if bound is None or claimed >= bound.time - CLOCK_TOLERANCE:
            return None
        return f"{bound.label} shows entry #{seq} did not exist yet"


@dataclass
class _Audit:
    clock: _Clock
    max_listed: int
    listed: list[NotAllowed] = field(default_factory=list)
    count: int = 0
    checked: int = 0
    unjustified: list[int] = field(default_factory=list)
    # Decisions some run removed and justified: seq → (purpose, recorded_at).
    removed: dict[int, tuple[str, datetime]] = field(default_factory=dict)
    # Decisions whose superseder's row is gone, settled once every run is read (it may
    # have gone in a later run than the decision).
    pending: list[tuple[int, _Decision]] = field(default_factory=list)

    def refuse(self, run_id: int, detail: str) -> None:
        self.count += 1
        if len(self.listed) < self.max_listed:
            self.listed.append(NotAllowed(run_id, detail))

    async def recheck(self, conn: Connection, run: _Run) -> None:
        if run.as_of > run.ran_at + AS_OF_SLACK:
            self.refuse(
                run.id,
                f"it ran at {run.ran_at.isoformat()} but claims to be as of {run.as_of.isoformat()}: "
                "a real run is as of its own time",
            )
        removed_decisions = await self._listing(conn, run)
        for d in run.decisions():
            if d.seq in removed_decisions:  # only what the run did remove can stand as a removed superseder
                self.removed.setdefault(d.seq, (d.purpose, d.recorded_at))
        for detail in _calls(run, self.clock):
            self.refuse(run.id, detail)
        for detail in await _holds(conn, run):
            self.refuse(run.id, detail)
        for detail in await _requests(conn, run):
            self.refuse(run.id, detail)
        await self._decisions(conn, run)

    async def _listing(self, conn: Connection, run: _Run) -> set[int]:
        """(d): the calls and decisions the run removed, by their true ledger seq, against its list."""
        rows = await conn.fetch(
            """
            SELECT r.kind, r.ref_id, r.ledger_seq, l.seq FROM removed_rows r
            LEFT JOIN ledger l ON l.kind = r.kind AND l.ref_id = r.ref_id AND l.hash = r.ledger_hash
            WHERE r.run_id = $1 AND r.kind = ANY($2::text[])
            """,
            run.id,
            list(_LISTED),
        )
        for row in rows:
            if row["seq"] is None:
                self.refuse(run.id, f"it names {row['kind']} id {row['ref_id']} by a hash the ledger does not hold")
            elif row["seq"] != row["ledger_seq"]:
                self.refuse(run.id, f"it names entry #{row['seq']} as entry #{row['ledger_seq']}")
        removed = {kind: {r["seq"] for r in rows if r["kind"] == kind and r["seq"]} for kind in _LISTED}
        listed = {
            "calls": {c.ledger_seq for c in run.calls if c.ledger_seq is not None},
            "consent_events": {d.seq for d in run.decisions()},
        }
        for kind, noun in (("calls", "call"), ("consent_events", "decision")):
            for seq in sorted(removed[kind] - listed[kind]):
                self.refuse(run.id, f"it removed {noun} entry #{seq}, which its justification does not list")
            for seq in sorted(listed[kind] - removed[kind]):
                self.refuse(run.id, f"its justification lists {noun} entry #{seq}, which it did not remove")
        unchained = [c.call_sid for c in run.calls if c.ledger_seq is None]
        for call_sid in unchained:
            self.refuse(run.id, f"its justification lists call {call_sid} without a ledger entry")
        return removed["consent_events"]

    async def _decisions(self, conn: Connection, run: _Run) -> None:
        """(c) and (g) for every decision the run removed."""
        named = await _entries(conn, [d.superseded_by for d in run.decisions() if d.superseded_by is not None])
        for decision in run.decisions():
            for detail in _decision(run, decision, named, self.clock):
                self.refuse(run.id, detail)
            found = named.get(decision.superseded_by or 0)
            if found is not None and found["kind"] == "consent_events" and found["recorded_at"] is None:
                if decision.superseded_by is not None and decision.superseded_by > decision.seq:
                    self.pending.append((run.id, decision))  # its row is gone: some run must have justified it

    def settle(self) -> None:
        """Superseders removed too: each must be a decision a run removed and justified, as claimed."""
        for run_id, decision in self.pending:
            found = self.removed.get(decision.superseded_by or 0)
            if found != (decision.purpose, decision.superseded_at):
                self.refuse(
                    run_id,
                    f"decision #{decision.seq}: its superseder, entry #{decision.superseded_by}, is gone, "
                    f"and no run justified removing it as a {decision.purpose} decision of "
                    f"{decision.superseded_at.isoformat() if decision.superseded_at else '?'}",
                )


def _calls(run: _Run, clock: _Clock) -> Iterator[str]:
    """(b) and (g) for every call the run removed."""
    for call in run.calls:
        if not call.started_at + timedelta(days=run.default_days) < run.as_of:
            yield (
                f"call {call.call_sid} started {call.started_at.isoformat()}, within the default "
                f"{run.default_days} days of {run.as_of.isoformat()}"
            )
        early = clock.too_early(call.ledger_seq, call.started_at)
        if early:
            yield f"call {call.call_sid} claims to have started {call.started_at.isoformat()}, but {early}"


def _decision(run: _Run, d: _Decision, named: Mapping[int, asyncpg.Record], clock: _Clock) -> Iterator[str]:
    early = clock.too_early(d.seq, d.recorded_at)
    if early:
        yield f"decision #{d.seq} claims to have been made {d.recorded_at.isoformat()}, but {early}"
    if d.superseded_by is None or d.superseded_at is None:
        yield f"decision #{d.seq} ({d.purpose}) was still in effect: nothing superseded it"
        return
    found = named.get(d.superseded_by)
    if d.superseded_by <= d.seq or found is None or found["kind"] != "consent_events":
        yield f"decision #{d.seq}: entry #{d.superseded_by}, named as its superseder, is not a later decision"
        return
    if d.superseded_at < d.recorded_at:
        yield f"decision #{d.seq}: its superseder is dated before it was made"
    if found["recorded_at"] is not None and (  # kept: it must be what the justification says
        found["purpose"] != d.purpose
        or salted_digest(run.salt, found["subject"]) != d.subject
        or found["recorded_at"] != d.superseded_at
    ):
        yield (
            f"decision #{d.seq}: entry #{d.superseded_by} is not a later {d.purpose} decision "
            f"for the same subject made {d.superseded_at.isoformat()}"
        )
        return
    if not d.superseded_at + run.period(d.purpose) < run.as_of:
        yield (
            f"decision #{d.seq} ({d.purpose}) was superseded {d.superseded_at.isoformat()}, within its "
            f"{run.period(d.purpose).days}-day period as of {run.as_of.isoformat()}"
        )


async def _entries(conn: Connection, seqs: list[int]) -> dict[int, asyncpg.Record]:
    """The ledger entries at ``seqs``, each with its decision where that row is kept
    (recorded_at NULL when the row is gone or the entry is not a decision)."""
    rows = await conn.fetch(
        """
        SELECT l.seq, l.kind, e.purpose, e.subject, e.recorded_at FROM ledger l
        LEFT JOIN consent_events e ON l.kind = 'consent_events' AND e.id = l.ref_id
        WHERE l.seq = ANY($1::bigint[])
        """,
        seqs,
    )
    return {r["seq"]: r for r in rows}


async def _holds(conn: Connection, run: _Run) -> list[str]:
    """(e): a hold in place when the run ran, on a caller or a subject it names.

    An account's hold covers its numbers as the customer directory lists them now. The
    directory is not evidence (not chained, and kept up to date by the owner), so this
    part is best-effort: a number moved off a held account since the run goes unnoticed.
    """
    held = await conn.fetch(
        """
        WITH placed AS (
          SELECT subject FROM (
            SELECT DISTINCT ON (subject) subject, action FROM hold_events WHERE at <= $1
            ORDER BY subject, at DESC, id DESC
          ) latest WHERE action = 'place'
        )
        SELECT subject, NULL AS account FROM placed
        UNION ALL
        SELECT p.phone, p.account_number FROM customer_phones p JOIN placed ON placed.subject = p.account_number
        """,
        run.ran_at,
    )
    named: dict[str, str] = {}
    for h in held:
        account = h["account"]
        held_as = h["subject"] if account is None else f"{h['subject']} (a number of account {account})"
        named[salted_digest(run.salt, h["subject"])] = held_as
    found = []
    for call in run.calls:
        if call.caller in named:
            found.append(f"call {call.call_sid}: its caller, {named[call.caller]}, was on hold when it ran")
        for d in call.decisions:
            if d.subject in named:
                found.append(f"decision #{d.seq}: its subject, {named[d.subject]}, was on hold when it ran")
    return found


async def _requests(conn: Connection, run: _Run) -> list[str]:
    """(f): a call that opened a request follows the request's course, never retention's."""
    sids = await conn.fetch(
        "SELECT DISTINCT call_sid FROM requests WHERE call_sid = ANY($1::text[]) ORDER BY call_sid",
        [c.call_sid for c in run.calls],
    )
    return [f"call {r['call_sid']} opened a request, which is never removed by retention" for r in sids]


def _parse(row: asyncpg.Record) -> _Run:
    """A run's periods and justification, as typed values (it was chained, not necessarily well made)."""
    try:
        periods, why = row["periods"], row["justification"]
        purposes = {str(k): _int(v) for k, v in dict(periods.get("purposes") or {}).items()}
        calls = tuple(
            _Call(
                str(c["call_sid"]),
                _time(c["started_at"]),
                str(c["caller"]),
                None if c["ledger_seq"] is None else _int(c["ledger_seq"]),
                tuple(
                    _Decision(
                        _int(d["seq"]),
                        str(d["purpose"]),
                        str(d["subject"]),
                        _time(d["recorded_at"]),
                        None if d["superseded_by"] is None else _int(d["superseded_by"]),
                        None if d["superseded_at"] is None else _time(d["superseded_at"]),
                    )
                    for d in c["decisions"]
                ),
            )
            for c in why["calls"]
        )
        return _Run(
            row["id"],
            row["ran_at"],
            _time(periods["as_of"]),
            _int(periods["default_days"]),
            purposes,
            str(why["salt"]),
            calls,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _Malformed(f"{type(exc).__name__}: {exc}") from exc


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{value!r} is not a whole number")
    return value


def _time(value: Any) -> datetime:
    at = datetime.fromisoformat(str(value))
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)  # as_of was given in UTC
