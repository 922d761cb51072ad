"""Consent receipts: one JSON document per decision, in the shape auditors expect.

The fields follow the core shared by ISO/IEC TS 27560:2023 (consent record information
structure) and the Kantara Initiative Consent Receipt v1.1: schema version, receipt
id, jurisdiction, language, controller, subject, per-purpose details with legal basis
and consent type, the notice (exact text and its hash, flow version), collection
method, timestamps, and how to withdraw — plus this service's evidence: the digits,
the recording and its hash, the agent, and the receipt's place in the hash chain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from flows.model import CollectStep, Decision, Flow, Purpose

__all__ = ["RECEIPT_SCHEMA", "Controller", "ReceiptMaker", "build_receipt", "withdrawal_codes"]

RECEIPT_SCHEMA = "consent-ivr-receipt/1.0 (ISO/IEC TS 27560:2023; Kantara Consent Receipt v1.1)"

_CONSENT_TYPE = {
    "keypad": "explicit: telephone keypad",
    "dialing_string": "explicit: telephone dialing string",
    "verbal": "explicit: recorded verbal statement",
    "agent_assisted": "explicit: telephone keypad during an agent-assisted transfer",
    "web_form": "explicit: web form",
    "written_form": "explicit: written form",
    "agent": "explicit: given to an agent",
}


@dataclass(frozen=True)
class Controller:
    name: str
    contact: str
    phone: str
    jurisdiction: str


def withdrawal_codes(flows: Iterable[Flow]) -> dict[str, str]:
    """Purpose -> the dialing string that withdraws it (``*12#``), from the flows' code tables."""
    codes: dict[str, str] = {}
    for flow in flows:
        for step in flow.steps.values():
            if isinstance(step, CollectStep):
                for code, choice in step.codes.items():
                    if choice.purpose and choice.action is Decision.REVOKE:
                        codes.setdefault(choice.purpose, f"*{code}#")
    return codes


class ReceiptMaker:
    """Receipts for decisions made on any of ``flows``, each in the words of the flow that asked."""

    def __init__(self, flows: Iterable[Flow], controller: Controller) -> None:
        flows = list(flows)
        self._purposes = {(flow.name, key): p for flow in flows for key, p in flow.purposes.items()}
        self._codes = withdrawal_codes(flows)
        self._controller = controller

    def receipt(self, row: asyncpg.Record | Mapping[str, Any]) -> dict[str, Any]:
        purpose = self._purposes.get((row["flow_name"], row["purpose"]))
        return build_receipt(row, self._controller, purpose, self._codes.get(row["purpose"]))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _notice(row: asyncpg.Record | Mapping[str, Any]) -> dict[str, Any] | None:
    """The legal notice heard whole on the decision's call before it (CPNI), if there was one."""
    if row["notice_id"] is None:
        return None
    return {
        "id": row["notice_id"],
        "kind": row["notice_kind"],
        "flow": row["flow_name"],
        "flow_version": row["flow_version"],
        "given_at": _iso(row["notice_given_at"]),
        "text": row["notice_text"],
        "text_sha256": _sha256(row["notice_text"]),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def build_receipt(
    row: asyncpg.Record | Mapping[str, Any],
    controller: Controller,
    purpose: Purpose | None,
    withdraw_code: str | None,
) -> dict[str, Any]:
    """The receipt for one ``consent_events`` row joined with its ledger entry and recording."""
    lang = row["lang"]
    label = purpose.label.texts.get(lang) if purpose else None
    action_words = purpose.describe(Decision(row["action"])).texts.get(lang) if purpose else None
    withdraw = f"Call {controller.phone} and choose this purpose again, or dial {withdraw_code} at the main menu"
    return {
        "schema_version": RECEIPT_SCHEMA,
        "receipt_id": str(row["event_id"]),
        "jurisdiction": controller.jurisdiction,
        "language": lang,
        "consent_timestamp": _iso(row["recorded_at"]),
        "controller": {"name": controller.name, "contact": controller.contact, "phone": controller.phone},
        "subject": {
            "id": row["subject"],
            "kind": row["subject_kind"],
            "identification": row["identification"],
            "caller_number": row["caller_number"],
        },
        "purposes": [
            {
                "purpose": row["purpose"],
                "description": label,
                "legal_basis": "consent",
                "consent_type": _CONSENT_TYPE.get(row["channel"], row["channel"]),
                "state": "given" if row["action"] == "grant" else "withdrawn",
                "decision": action_words,
                "honor_by": row["honor_by"].isoformat() if row["honor_by"] else None,
            }
        ],
        "notice": _notice(row),
        "prompt_heard": {  # the read-back the caller confirmed, word for word
            "flow": row["flow_name"],
            "flow_version": row["flow_version"],
            "text": row["prompt_text"],
            "text_sha256": _sha256(row["prompt_text"]),
        },
        "collection_method": _collection_method(row),
        "digits": row["raw_digits"],
        "recording": (
            {
                "id": row["recording_sid"],
                "sha256": row["media_sha256"],
                "size_bytes": row["media_size"],
                "fetch_status": row["fetch_status"] or "pending",
            }
            if row["recording_sid"]
            else None
        ),
        "agent": row["agent"],
        "how_to_withdraw": withdraw if withdraw_code else f"Call {controller.phone}",
        "ledger": {"seq": row["ledger_seq"], "hash": row["ledger_hash"], "prev_hash": row["ledger_prev_hash"]},
    } | _other_channel(row)


def _collection_method(row: asyncpg.Record | Mapping[str, Any]) -> str:
    if row["call_sid"] is None:  # a decision from another channel (migration 0031)
        return f"{row['channel']}, collected by {row['collected_by']}, verified by {row['verification']}"
    return f"telephone IVR, {row['channel']}, call {row['call_sid']} to {row['dialed_number']}"


def _other_channel(row: asyncpg.Record | Mapping[str, Any]) -> dict[str, Any]:
    """What stands behind a decision taken off the phone line: who, when, how verified, the document."""
    if row["call_sid"] is not None:
        return {}
    document = (
        {"media_type": row["document_type"], "sha256": row["document_sha256"], "size_bytes": row["document_bytes"]}
        if row["document_sha256"]
        else None
    )
    collected = {"by": row["collected_by"], "at": _iso(row["collected_at"]), "verification": row["verification"]}
    return {"collected": collected, "document": document}
