"""Recomputing the ledger's chain: is every evidence row still what was chained, in order?

The check streams the ledger in order with each entry's evidence row (never the
whole ledger in memory), recomputes every hash, and reports the first break:

- ``edited``: the evidence row no longer matches the hash it was chained with;
- ``missing``: an entry, or the evidence row it points at, is gone;
- ``reordered``: an entry links to an earlier entry than the one before it;
- ``rewritten``: an entry links to nothing the chain had (inserted, or the chain redone);
- ``inserted``: an evidence row that was never chained.

Beside the chain: every kept checkpoint's root (``forked``, ``truncated``), every kept
recording's bytes (``missing``, ``swapped``), each table's identity sequence against the
ids the ledger holds (``rewritten``: a sequence set back would hand chained ids out
again), and every retention run's removals rechecked from its chained justification
(``not allowed``, storage/retention_audit.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import asyncpg

from storage.ledger import GENESIS, canonical_json, entry_hash
from storage.merkle import Frontier, leaf_data, leaf_hash
from storage.postgres import Connection
from storage.recordings import MediaStore
from storage.retention_audit import SignedTime, recheck_retention
from storage.sealed_media import SealBroken, UnknownRecordingKey
from storage.tree_heads import TreeHead

__all__ = ["EVIDENCE_TABLES", "Break", "Head", "KeptCheckpoint", "Report", "ledger_head", "verify_ledger"]

# Every table whose rows are chained (migration 0005 lists the first of them; later ones
# are made evidence tables by their own migration, pin_unlocks by 0021).
EVIDENCE_TABLES = (
    "flow_versions",
    "calls",
    "keypresses",
    "consent_events",
    "call_endings",
    "call_statuses",
    "recordings",
    "recording_statuses",
    "connections",
    "pin_checks",
    "notices",
    "requests",
    "request_events",
    "recording_media",
    "hold_events",
    "retention_runs",
    "transfers",
    "transfer_events",
    "access_log",
    "event_deliveries",  # 0024: events delivered, and applied by their receivers
    "event_applications",
    "deemed_approvals",  # 0025: CPNI approval assumed after the opt-out window
    "pin_unlocks",
    "consent_documents",  # 0031: the text and document behind a decision from another channel
)
_PREFETCH = 2_000
# A ledger rewritten wholesale could break at every entry: list this many, count them all.
MAX_LISTED_BREAKS = 1_000
# How often a long check says how far it has got.
PROGRESS_EVERY = 100_000
# Columns added to an evidence table after it had chained rows: those rows were chained
# without them and now read NULL there (retention runs made before migration 0017).
_ADDED_LATER: Mapping[str, tuple[str, ...]] = {"retention_runs": ("justification",)}


@dataclass(frozen=True)
class Break:
    problem: str  # edited, missing, reordered, rewritten, inserted; forked, truncated; swapped; not allowed; unreadable
    seq: int | None
    kind: str
    ref_id: int | None
    detail: str

    def __str__(self) -> str:
        if self.seq:
            where = f"entry #{self.seq}" + (f" ({self.kind} id {self.ref_id})" if self.ref_id is not None else "")
        else:
            where = f"{self.kind} id {self.ref_id}" if self.ref_id is not None else self.kind
        return f"{self.problem}: {where}: {self.detail}"


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str


@dataclass(frozen=True)
class Report:
    entries: int
    head: Head
    first_break: Break | None
    since_head_seq: int | None  # where a head kept earlier stands in the chain, if asked
    removed: int = 0  # entries whose rows a retention run removed (with a tombstone)
    checkpoint_breaks: tuple[Break, ...] = ()  # every kept checkpoint the ledger contradicts
    checkpoints_checked: int = 0
    media_breaks: tuple[Break, ...] = ()  # every recording whose bytes left their chained hash
    media_checked: int = 0
    breaks: tuple[Break, ...] = ()  # the chain's breaks, the first MAX_LISTED_BREAKS of them
    break_count: int = 0
    retention_breaks: tuple[Break, ...] = ()  # removals not allowed, the first MAX_LISTED_BREAKS of them
    retention_break_count: int = 0
    retention_checked: int = 0  # runs whose removals were rechecked
    retention_unjustified: tuple[int, ...] = ()  # runs made before justifications: not rechecked

    @property
    def intact(self) -> bool:
        return (
            self.first_break is None
            and not self.checkpoint_breaks
            and not self.media_breaks
            and not self.retention_breaks
        )


@dataclass(frozen=True)
class KeptCheckpoint:
    """A signed tree head kept outside the database (its signature already checked).

    Its ``time``, when given, bounds the times retention justifications claim: no entry
    beyond its size existed before it.
    """

    head: TreeHead
    label: str
    time: datetime | None = None


async def ledger_head(conn: Connection) -> Head:
    row = await conn.fetchrow("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1")
    return Head(row["seq"], row["hash"]) if row else Head(0, GENESIS)


def _entries_with_rows() -> str:
    lookups = "\n  UNION ALL ".join(
        f"SELECT to_jsonb(t.*) FROM {table} t WHERE l.kind = '{table}' AND t.id = l.ref_id" for table in EVIDENCE_TABLES
    )
    return f"""
        SELECT l.seq, l.kind, l.ref_id, l.prev_hash, l.hash, c.content,
               CASE WHEN c.content IS NULL THEN
                 (SELECT r.run_id FROM removed_rows r WHERE r.kind = l.kind AND r.ref_id = l.ref_id
                    AND r.ledger_hash = l.hash)
               END AS removed_by
        FROM ledger l LEFT JOIN LATERAL ({lookups}) AS c(content) ON true
        ORDER BY l.seq
    """


async def verify_ledger(
    conn: Connection,
    *,
    since_head: str | None = None,
    checkpoints: Sequence[KeptCheckpoint] = (),
    media: MediaStore | None = None,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """The chain, the tree against ``checkpoints``, the retention runs, and (given their
    store) every recording's bytes; ``progress`` hears the count of entries checked every
    PROGRESS_EVERY entries and at the end."""
    report = await _verify_chain(conn, since_head, checkpoints, progress)
    if media is None:
        return report
    breaks, checked = await _rehash_media(conn, media)
    return replace(report, media_breaks=tuple(breaks), media_checked=checked)


async def _rehash_media(conn: Connection, store: MediaStore) -> tuple[list[Break], int]:
    """Each kept recording's audio (opened, if sealed), one at a time, against the SHA-256
    chained when it was fetched."""
    breaks, checked = [], 0
    rows = await conn.fetch("SELECT id, recording_sid, sha256 FROM recording_media ORDER BY id")
    for row in rows:
        checked += 1
        try:
            audio = await store.get(conn, row["recording_sid"])
        except UnknownRecordingKey as exc:  # not proof of tampering, but nothing checked either
            breaks.append(Break("unreadable", None, "recording_media", row["id"], str(exc)))
            continue
        except SealBroken as exc:
            breaks.append(Break("swapped", None, "recording_media", row["id"], str(exc)))
            continue
        if audio is None:
            detail = f"recording {row['recording_sid']}: its bytes are gone from the {store.name} store"
            breaks.append(Break("missing", None, "recording_media", row["id"], detail))
        elif hashlib.sha256(audio).hexdigest() != row["sha256"]:
            detail = f"recording {row['recording_sid']}: its bytes no longer hash to the chained {row['sha256'][:16]}…"
            breaks.append(Break("swapped", None, "recording_media", row["id"], detail))
    return breaks, checked


async def _verify_chain(
    conn: Connection,
    since_head: str | None,
    checkpoints: Sequence[KeptCheckpoint],
    progress: Callable[[int], None] | None,
) -> Report:
    """Recompute the whole chain in one consistent snapshot, and the tree's root at the size
    of every kept checkpoint; report every break of the chain, every checkpoint the ledger
    contradicts (cut off, rewritten or forked after it was signed), and every removal a
    retention run was not allowed to make."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        walk = _Walk(since_head, checkpoints)
        walked = 0
        async for row in conn.cursor(_entries_with_rows(), prefetch=_PREFETCH):
            found = walk.step(row)
            while found is not None:  # noted, and the walk goes on from this entry as it stands
                found = walk.broken(await _explained(conn, found, row["prev_hash"]), row)
            walked += 1
            if progress is not None and walked % PROGRESS_EVERY == 0:
                progress(walked)
        if progress is not None and (walked % PROGRESS_EVERY or not walked):
            progress(walked)
        for table in EVIDENCE_TABLES:
            walk.note(await _unchained(conn, table))
        for found in await _sequences_behind(conn):
            walk.note(found)
        walk.note(await _tampered_tombstone(conn))
        if since_head is not None and walk.since_head_seq is None:
            walk.note(Break("rewritten", None, "ledger", None, f"the kept head {since_head} is not in the chain"))
        signed = [SignedTime(c.head.size, c.time, c.label) for c in checkpoints if c.time is not None]
        audit = await recheck_retention(conn, signed, max_listed=MAX_LISTED_BREAKS)
        return replace(
            walk.report(),
            retention_breaks=tuple(
                Break("not allowed", None, "retention_runs", n.run_id, n.detail) for n in audit.not_allowed
            ),
            retention_break_count=audit.count,
            retention_checked=audit.checked,
            retention_unjustified=audit.unjustified,
        )


class _Walk:
    def __init__(self, since_head: str | None, checkpoints: Sequence[KeptCheckpoint] = ()) -> None:
        self.seq, self.hash = 0, GENESIS
        self.removed = 0
        self.since_head = since_head
        self.since_head_seq: int | None = 0 if since_head == GENESIS else None
        self.tree = Frontier()
        self.waiting = sorted(checkpoints, key=lambda c: c.head.size)
        self.checked = 0
        self.contradicted: list[Break] = []
        self.breaks: list[Break] = []
        self.break_count = 0
        self._at_size()  # a checkpoint of the empty tree

    def step(self, row: asyncpg.Record) -> Break | None:
        seq, kind, ref_id = row["seq"], row["kind"], row["ref_id"]
        if seq != self.seq + 1:
            return Break("missing", self.seq + 1, kind, None, f"entries #{self.seq + 1} to #{seq - 1} are gone")
        if row["prev_hash"] != self.hash:
            return Break("rewritten", seq, kind, ref_id, f"does not link to entry #{self.seq}")
        if row["content"] is None and row["removed_by"] is not None:
            self.removed += 1  # removed under retention; the run's tombstone names it
        elif row["content"] is None:
            return Break("missing", seq, kind, ref_id, "the evidence row it chained is gone")
        elif not _hashes_to(kind, row["content"], row["prev_hash"], row["hash"]):
            return Break("edited", seq, kind, ref_id, "the evidence row no longer matches its hash")
        self.seq, self.hash = seq, row["hash"]
        if self.hash == self.since_head:
            self.since_head_seq = seq
        self.tree.append(leaf_hash(leaf_data(seq, kind, ref_id, row["hash"])))
        self._at_size()
        return None

    def _at_size(self) -> None:
        """Check every checkpoint of the tree's current size against its root."""
        while self.waiting and self.waiting[0].head.size == self.tree.size:
            kept = self.waiting.pop(0)
            self.checked += 1
            if kept.head.root != self.tree.root().hex():
                self.contradicted.append(
                    Break(
                        "forked",
                        self.tree.size or None,
                        "ledger",
                        None,
                        f"{kept.label} signed root {kept.head.root[:16]}…; the ledger's first "
                        f"{kept.head.size:,} entries now hash to {self.tree.root().hex()[:16]}…",
                    )
                )

    def note(self, found: Break | None) -> None:
        if found is None:
            return
        self.break_count += 1
        if len(self.breaks) < MAX_LISTED_BREAKS:
            self.breaks.append(found)

    def broken(self, found: Break, row: asyncpg.Record) -> Break | None:
        """Note a break, and go on from this entry as it stands, so the rest is checked too.

        After a gap or a broken link the entry is taken as linked and its row still
        checked (which may find it edited too); an entry whose row is wrong is taken as it is.
        """
        self.note(found)
        if found.problem in ("rewritten", "reordered") or (found.problem == "missing" and found.ref_id is None):
            self.seq, self.hash = row["seq"] - 1, row["prev_hash"]
            return self.step(row)
        self.seq, self.hash = row["seq"], row["hash"]
        self.tree.append(leaf_hash(leaf_data(row["seq"], row["kind"], row["ref_id"], row["hash"])))
        self._at_size()
        return None

    def report(self) -> Report:
        beyond = [
            Break(
                "truncated",
                None,
                "ledger",
                None,
                f"{kept.label} covered {kept.head.size:,} entries; the ledger now has {self.tree.size:,}",
            )
            for kept in self.waiting
        ]
        return Report(
            self.seq,
            Head(self.seq, self.hash),
            self.breaks[0] if self.breaks else None,
            self.since_head_seq,
            self.removed,
            tuple(self.contradicted + beyond),
            self.checked + len(beyond),
            breaks=tuple(self.breaks),
            break_count=self.break_count,
        )


def _hashes_to(kind: str, content: Mapping[str, Any], prev_hash: str, expected: str) -> bool:
    """Does the row, as chained, hash to ``expected``? A row chained before a column was
    added reads NULL there, and is taken without it (the same facts, in the form chained)."""
    if entry_hash(canonical_json(content), prev_hash) == expected:
        return True
    added = [c for c in _ADDED_LATER.get(kind, ()) if c in content and content[c] is None]
    if not added:
        return False
    return entry_hash(canonical_json({k: v for k, v in content.items() if k not in added}), prev_hash) == expected


async def _sequences_behind(conn: Connection) -> list[Break]:
    """Each evidence table's identity sequence must be past every id the ledger holds for it.

    Gaps are normal (an ``INSERT … ON CONFLICT DO NOTHING`` uses an id it does not keep);
    a sequence behind the ledger would hand out ids already chained (to rows removed under
    retention, or clash with kept ones), so it was set back. ``last_value`` is NULL when a
    sequence has handed out nothing since it was (re)started.
    """
    rows = await conn.fetch(
        """
        SELECT t.kind, s.last_value, has_sequence_privilege(q.seq, 'SELECT') AS readable,
               (SELECT max(l.ref_id) FROM ledger l WHERE l.kind = t.kind) AS chained
        FROM unnest($1::text[]) AS t(kind)
        CROSS JOIN LATERAL (SELECT pg_get_serial_sequence(quote_ident(t.kind), 'id') AS seq) q
        LEFT JOIN pg_sequences s ON format('%I.%I', s.schemaname, s.sequencename) = q.seq
        ORDER BY t.kind
        """,
        list(EVIDENCE_TABLES),
    )
    found = []
    for row in rows:
        if row["chained"] is None or (row["last_value"] or 0) >= row["chained"]:
            continue
        if not row["readable"]:
            detail = "its identity sequence cannot be read by this login, so ids handed out again would go unseen"
            found.append(Break("unreadable", None, row["kind"], None, detail))
            continue
        at = (
            "has handed out nothing since it was restarted"
            if row["last_value"] is None
            else f"stands at {row['last_value']}"
        )
        detail = f"its identity sequence {at}, behind id {row['chained']} in the ledger: it was set back"
        found.append(Break("rewritten", None, row["kind"], None, detail))
    return found


async def _explained(conn: Connection, found: Break, prev_hash: str) -> Break:
    """A broken link that points at another entry of the chain is a reordering."""
    if found.problem != "rewritten":
        return found
    linked = await conn.fetchval("SELECT seq FROM ledger WHERE hash = $1", prev_hash)
    if linked is None:
        return found
    detail = f"links to entry #{linked}, not #{found.seq - 1 if found.seq else 0}"
    return Break("reordered", found.seq, found.kind, found.ref_id, detail)


async def _tampered_tombstone(conn: Connection) -> Break | None:
    """Each retention run's chained digest must still match the list of rows it removed."""
    async for run in conn.cursor("SELECT id, removed_digest FROM retention_runs ORDER BY id"):
        lines = await conn.fetchval(
            """
            SELECT coalesce(string_agg(kind || ':' || ref_id || ':' || ledger_hash, E'\n' ORDER BY
                   kind || ':' || ref_id || ':' || ledger_hash COLLATE "C"), '')
            FROM removed_rows WHERE run_id = $1
            """,
            run["id"],
        )
        if hashlib.sha256(lines.encode()).hexdigest() != run["removed_digest"]:
            return Break("edited", None, "retention_runs", run["id"], "its list of removed rows was changed")
    return None


async def _unchained(conn: Connection, table: str) -> Break | None:
    row = await conn.fetchrow(
        f"""
        SELECT min(t.id) AS first_id, count(*) AS rows FROM {table} t
        WHERE NOT EXISTS (SELECT FROM ledger l WHERE l.kind = $1 AND l.ref_id = t.id)
        """,
        table,
    )
    assert row is not None  # an aggregate without GROUP BY returns exactly one row
    if not row["rows"]:
        return None
    return Break("inserted", None, table, row["first_id"], f"{row['rows']} row(s) were never chained")
