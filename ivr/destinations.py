"""Where a call may be sent and which flow it may run: the patterns, written once.

A transfer's ``return_to`` (and the agents' destination) is a Twilio client, a SIP URI,
a queue or an E.164 number; a flow name is a lower-case slug (it appears in webhook
URLs, settings and evidence).

Being well formed is not enough for a ``return_to``: an agent's request moves a live
caller, so it may only send them to a destination the operator listed in
``TRANSFER_RETURN_DESTINATIONS`` (``ReturnDestinations``) — their own queues, clients,
PBX or numbers, never a number or SIP domain an agent typed in.
"""

from __future__ import annotations

import re

__all__ = ["FLOW_NAME", "RETURN_TARGET", "ReturnDestinations", "is_flow_name", "is_return_target"]

# ``\Z``, not ``$``: ``$`` also matches before a final newline, which would then be kept.
RETURN_TARGET = re.compile(r"^(queue:[A-Za-z0-9_-]{1,64}|client:[A-Za-z0-9_.-]{1,128}|sip:\S{3,256}|\+[1-9]\d{6,14})\Z")
FLOW_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}\Z")

# A SIP URI an allow-list can judge: user@host[:port], at most a transport parameter. Any
# other parameter or header (``;x=@pbx.example.com``, ``?X-Header=``) could hide where the
# call really goes, or add headers to it, so such a URI matches no entry.
_SIP_TARGET = re.compile(
    r"^sip:(?P<user>[A-Za-z0-9._~+!$&'()=,%-]{1,128})@(?P<host>[A-Za-z0-9.-]{1,253}(?::\d{1,5})?)"
    r"(?:;transport=(?:udp|tcp|tls))?\Z",
    re.IGNORECASE,
)
# Entries: ``queue:NAME`` / ``client:NAME`` (a trailing * for any name so beginning),
# ``sip:USER@HOST`` or ``sip:*@HOST`` (anyone at that host), ``+NUMBER`` (a trailing * for
# any number so beginning).
_ENTRY = re.compile(
    r"^(?:(?P<named>queue:[A-Za-z0-9_-]{0,64}\*|client:[A-Za-z0-9_.-]{0,128}\*)"
    r"|(?P<sip>sip:(?:\*|[A-Za-z0-9._~+!$&'()=,%-]{1,128})@[A-Za-z0-9.-]{1,253}(?::\d{1,5})?)"
    r"|(?P<number>\+[1-9]\d{0,14}\*))\Z"
)


def is_return_target(text: str) -> bool:
    return RETURN_TARGET.match(text) is not None


def is_flow_name(text: str) -> bool:
    return FLOW_NAME.match(text) is not None


class ReturnDestinations:
    """The destinations an agent may send a caller back to, from a comma-separated list."""

    def __init__(self, entries: tuple[str, ...]) -> None:
        for entry in entries:
            exact = "*" not in entry and not entry.startswith("sip:") and is_return_target(entry)
            if not exact and not _ENTRY.match(entry):
                raise ValueError(
                    f"{entry!r} is not queue:NAME, client:NAME, sip:USER@HOST, sip:*@HOST or an E.164 number"
                    " (queue:, client: and numbers may end in * for any that begin so)"
                )
        self.entries = entries

    @classmethod
    def parse(cls, text: str) -> ReturnDestinations:
        """``queue:support,client:*,sip:*@pbx.example.com,+1415555*`` -> the allow-list."""
        return cls(tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip())))

    def also(self, target: str) -> ReturnDestinations:
        """This list with one exact destination more (the agents' own line, AGENT_TARGET)."""
        return ReturnDestinations(tuple(dict.fromkeys((*self.entries, target))))

    def allows(self, target: str) -> bool:
        """Whether ``target`` (a well-formed return target) is one of these destinations."""
        if not is_return_target(target):
            return False
        if target.startswith("sip:"):
            return self._allows_sip(target)
        return any(_matches(entry, target) for entry in self.entries if not entry.startswith("sip:"))

    def _allows_sip(self, target: str) -> bool:
        parts = _SIP_TARGET.match(target)
        if parts is None:
            return False
        user, host = parts["user"], parts["host"].lower()
        for entry in self.entries:
            if entry.startswith("sip:"):
                entry_user, _, entry_host = entry.removeprefix("sip:").partition("@")
                if entry_host.lower() == host and entry_user in ("*", user):
                    return True
        return False

    def __str__(self) -> str:
        return ", ".join(self.entries) or "nothing"

    def __repr__(self) -> str:
        return f"ReturnDestinations({self.entries!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ReturnDestinations) and other.entries == self.entries

    def __hash__(self) -> int:
        return hash(self.entries)


def _matches(entry: str, target: str) -> bool:
    if entry.endswith("*"):
        return target.startswith(entry[:-1]) and target != entry[:-1]
    return target == entry
