"""A quick check of one call's records against their ledger entries, as the rows are now."""

from __future__ import annotations

from typing import Any

from storage.ledger import canonical_json, entry_hash

__all__ = ["chain_check"]


def chain_check(story: dict[str, Any]) -> dict[str, Any]:
    """Recompute each of the call's records' ledger hashes from the rows as they are now."""
    checked, bad = 0, []
    for name, value in story.items():
        for record in value if isinstance(value, list) else [value]:
            if not isinstance(record, dict) or "ledger" not in record:
                continue
            entry = record["ledger"]
            checked += 1
            if entry["hash"] is None or entry_hash(canonical_json(record["row"]), entry["prev_hash"]) != entry["hash"]:
                bad.append({"record": name, "id": record["row"].get("id"), "ledger_seq": entry["seq"]})
    return {"records": checked, "intact": not bad, "mismatches": bad}
