"""Logging: structlog on top of the standard library, with phone numbers masked everywhere.

Every record, ours or a library's (aiohttp's access log included), passes through
``mask_phone_numbers`` before it is rendered, so a caller's number never reaches a
log file whole (docs/architecture.md, rule 7).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import unquote_plus

import orjson
import phonenumbers
import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler
from aiohttp.web import BaseRequest, StreamResponse

from ivr.identifiers import DEFAULT_REGION

__all__ = ["AccessLog", "configure_logging", "fresh_log_context", "mask_phone_number", "mask_phone_numbers"]

# E.164 (+ and 7 to 15 digits) or a bare run of 10 to 15 digits standing alone: the
# cheap pass, which catches the forms the service itself writes.
_PHONE = re.compile(r"\+\d{7,15}\b|(?<![\w.:-])\d{10,15}(?![\w.:-])")
_KEEP_LAST = 2
# Text with this many digits (identifiers and times aside) may hold a number written as
# people write them ("(415) 555-0199", "+1 415 555 0199"): only that text pays for
# phonenumbers' matcher. National numbers have ten digits, international ones from eight.
_DIGITS_FOR_A_NUMBER = 8
_DIGITS_FOR_A_NATIONAL_NUMBER = 10
_DIGIT = re.compile(r"\d")
# Twilio SIDs, UUIDs and hex digests are identifiers, not numbers, whatever digits they hold.
_IDENTIFIER = re.compile(
    r"\b(?:[A-Z]{2}[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{16,})\b"
    r"|\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"  # and times are times
)
# Secrets that must never be logged: our tokens and signing secrets by their prefix, a
# credential in a query or header, and anything else shaped like a random token.
_SECRET = re.compile(
    r"\b(?P<prefix>ivr_|whsec_)[A-Za-z0-9_\-+/=]{8,}"
    r"|(?P<name>(?:access_token|token|secret|password|authorization)=|[Bb]earer\s+)[^\s&\"']+"
    r"|(?<![\w-])(?![A-Z]{2}[0-9a-f]{32}(?![\w-]))"  # a Twilio SID is not a secret
    r"(?=[A-Za-z0-9_-]*[A-Z])(?=[A-Za-z0-9_-]*[a-z])(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{32,}(?![\w-])"
)


def mask_phone_number(number: str) -> str:
    """``+14155550123`` -> ``+*********23``: enough to tell calls apart, not to dial."""
    digits = number.lstrip("+")
    prefix = "+" if number.startswith("+") else ""
    return prefix + "*" * (len(digits) - _KEEP_LAST) + digits[-_KEEP_LAST:]


def _redact(match: re.Match[str]) -> str:
    kept = match.group("prefix") or match.group("name") or ""
    return kept + "[redacted]"


def _mask_text(text: str) -> str:
    """``text`` with secrets redacted and phone numbers masked, in every format people write
    them, also when URL-encoded (``%2B1415…``, ``(415)%20555-0199``)."""
    if "%" in text:  # a query string or path as sent: read it as it was meant
        text = unquote_plus(text)
    text = _SECRET.sub(_redact, text)
    text = _PHONE.sub(lambda m: mask_phone_number(m.group(0)), text)
    if len(_DIGIT.findall(text)) < _DIGITS_FOR_A_NUMBER:
        return text
    shielded = _IDENTIFIER.sub(lambda m: "\0" * len(m.group(0)), text)  # same length, no digits
    if len(_DIGIT.findall(shielded)) < _DIGITS_FOR_A_NUMBER:
        return text
    return _mask_written_numbers(text, shielded)


def _mask_written_numbers(text: str, shielded: str) -> str:
    found = phonenumbers.PhoneNumberMatcher(shielded, DEFAULT_REGION, leniency=phonenumbers.Leniency.POSSIBLE)
    for match in reversed(list(found)):
        raw = text[match.start : match.end]
        digits = "".join(c for c in raw if c.isdigit())
        needed = _DIGITS_FOR_A_NUMBER if raw.lstrip("( ").startswith("+") else _DIGITS_FOR_A_NATIONAL_NUMBER
        if len(digits) >= needed:
            text = text[: match.start] + mask_phone_number(digits) + text[match.end :]
    return text


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return _mask_text(value)
    if isinstance(value, dict):
        return {key: _mask_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_mask_value(item) for item in value)
    return value


def mask_phone_numbers(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    """structlog processor: mask phone numbers in every value of the event."""
    return {key: _mask_value(value) for key, value in event_dict.items()}


class AccessLog(AbstractAccessLogger):
    """One structured line per request, fields rather than a formatted string.

    aiohttp's own access log formats a text line (with a strftime per request) that the
    JSON pipeline then carries as one opaque string; this costs less and can be queried.
    A webhook Twilio was answered is logged at DEBUG: at a call center's volume those
    lines cost more than a twentieth of a webhook, and what a call did is logged at INFO
    by the call desk (answered, decision recorded, ended), each line with its CallSid.
    Every other request, and every webhook that failed, is logged at INFO.
    """

    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        super().__init__(logger, log_format)
        self._log = structlog.get_logger("aiohttp.access")

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        answered_webhook = response.status < 400 and request.path.startswith(WEBHOOK_PREFIX)
        (self._log.debug if answered_webhook else self._log.info)(
            "request",
            method=request.method,
            path=logged_path(request),
            status=response.status,
            bytes=response.body_length,
            ms=round(time * 1000, 2),
            remote=request.remote,
        )


WEBHOOK_PREFIX = "/twilio/"


def logged_path(request: BaseRequest) -> str:
    """What an access line says was asked for: a webhook's path and query (ids and step
    numbers Twilio was given by us), anything else by its route template — never the
    numbers, accounts or tokens a person put in a path or query string."""
    if request.path.startswith(WEBHOOK_PREFIX):
        return request.path_qs
    match_info = getattr(request, "match_info", None)
    route = getattr(match_info, "route", None)
    resource = getattr(route, "resource", None)
    if resource is not None:
        return str(resource.canonical)
    return request.path if len(request.path) <= 64 else request.path[:64] + "…"  # no route: masked below


def _json(event: dict[str, Any], **_: Any) -> str:
    return orjson.dumps(event, default=str).decode()


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Route structlog and stdlib logging through one masking, rendering pipeline."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        # Plain tracebacks: rich ones print local variables, which can hold tokens and numbers.
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback)
        if fmt == "console"
        else structlog.processors.JSONRenderer(serializer=_json)
    )
    structlog.configure(
        # Filtered first: a line below the level costs a comparison, not the whole pipeline.
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            mask_phone_numbers,
            renderer,
        ],
    )
    # The logging cookbook's advice for a hot path: no caller lookup (a stack walk per line;
    # structlog names the logger anyway), no thread or process fields nobody reads.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


@web.middleware
async def fresh_log_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A keep-alive connection serves its requests in one task: start each one unlabelled
    (a webhook binds its CallSid once its signature checks out)."""
    structlog.contextvars.clear_contextvars()
    return await handler(request)
