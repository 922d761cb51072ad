"""Where a call may be sent and which flow it may run: the patterns, written once.

A transfer's ``return_to`` (and the agents' destination) is a Twilio client, a SIP URI,
a queue or an E.164 number; a flow name is a lower-case slug (it appears in webhook
URLs, settings and evidence).
"""

from __future__ import annotations

import re

__all__ = ["FLOW_NAME", "RETURN_TARGET", "is_flow_name", "is_return_target"]

RETURN_TARGET = re.compile(r"^(queue:[A-Za-z0-9_-]{1,64}|client:[A-Za-z0-9_.-]{1,128}|sip:\S{3,256}|\+[1-9]\d{6,14})$")
FLOW_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def is_return_target(text: str) -> bool:
    return RETURN_TARGET.match(text) is not None


def is_flow_name(text: str) -> bool:
    return FLOW_NAME.match(text) is not None
