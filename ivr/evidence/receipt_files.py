"""Writing receipts out as JSON lines (whole receipts) or CSV (one flat row per decision)."""

from __future__ import annotations

import csv
import json
from typing import Any, TextIO

from ivr.csv_cells import safe_cell

__all__ = ["CSV_COLUMNS", "ReceiptWriter"]

CSV_COLUMNS = (
    "receipt_id",
    "consent_timestamp",
    "subject_id",
    "subject_kind",
    "identification",
    "caller_number",
    "purpose",
    "state",
    "consent_type",
    "honor_by",
    "digits",
    "language",
    "flow_version",
    "notice_text_sha256",
    "prompt_text_sha256",
    "recording_id",
    "recording_sha256",
    "agent",
    "ledger_seq",
    "ledger_hash",
)


class ReceiptWriter:
    def __init__(self, out: TextIO, fmt: str) -> None:
        self._out, self._fmt = out, fmt
        self._csv = csv.DictWriter(out, fieldnames=CSV_COLUMNS) if fmt == "csv" else None
        if self._csv is not None:
            self._csv.writeheader()

    def write(self, receipt: dict[str, Any]) -> None:
        if self._csv is None:
            self._out.write(json.dumps(receipt, ensure_ascii=False, sort_keys=True) + "\n")
            return
        purpose, subject = receipt["purposes"][0], receipt["subject"]
        recording = receipt["recording"] or {}
        self._csv.writerow(
            {name: safe_cell(value) for name, value in self._row(receipt, purpose, subject, recording).items()}
        )

    @staticmethod
    def _row(
        receipt: dict[str, Any], purpose: dict[str, Any], subject: dict[str, Any], recording: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "receipt_id": receipt["receipt_id"],
            "consent_timestamp": receipt["consent_timestamp"],
            "subject_id": subject["id"],
            "subject_kind": subject["kind"],
            "identification": subject["identification"],
            "caller_number": subject["caller_number"],
            "purpose": purpose["purpose"],
            "state": purpose["state"],
            "consent_type": purpose["consent_type"],
            "honor_by": purpose["honor_by"] or "",
            "digits": receipt["digits"],
            "language": receipt["language"],
            "flow_version": receipt["prompt_heard"]["flow_version"],
            "notice_text_sha256": (receipt["notice"] or {}).get("text_sha256", ""),
            "prompt_text_sha256": receipt["prompt_heard"]["text_sha256"],
            "recording_id": recording.get("id", ""),
            "recording_sha256": recording.get("sha256") or "",
            "agent": receipt["agent"] or "",
            "ledger_seq": receipt["ledger"]["seq"],
            "ledger_hash": receipt["ledger"]["hash"],
        }
