"""The body of every delivery: a CloudEvents 1.0 JSON envelope, the same for every attempt.

``id`` is the event's ledger entry (``evt_<seq>``, also the ``webhook-id``), ``type`` what
happened (``consent.revoked``, …), ``source`` the service's public URL, ``time`` when it
happened, ``subject`` the person it is about, ``dataschema`` the version of ``data``'s
shape (a change that could be misread gets a new version, and a new type). ``timestamp``
is the Standard Webhooks payload's name for the same moment.
"""

from __future__ import annotations

import json

from storage.outbox import Event

__all__ = ["DATA_VERSION", "envelope", "envelope_body"]

DATA_VERSION = "v1"


def envelope(event: Event, source: str) -> dict[str, object]:
    return {
        "specversion": "1.0",
        "id": event.id,
        "type": event.type,
        "source": source,
        "subject": event.data.get("subject"),
        "time": event.occurred_at.isoformat(),
        "timestamp": event.occurred_at.isoformat(),
        "datacontenttype": "application/json",
        "dataschema": f"urn:consent-ivr:events:{event.type}:{DATA_VERSION}",
        "data": event.data,
    }


def envelope_body(event: Event, source: str) -> bytes:
    """The envelope as sent: compact JSON with sorted keys, so every attempt sends the same bytes."""
    return json.dumps(envelope(event, source), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
