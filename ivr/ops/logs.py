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

import orjson
import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler
from aiohttp.web import BaseRequest, StreamResponse

__all__ = ["AccessLog", "configure_logging", "fresh_log_context", "mask_phone_number", "mask_phone_numbers"]

# E.164 (+ and 7 to 15 digits) or a bare run of 10 to 15 digits standing alone.
_PHONE = re.compile(r"\+\d{7,15}\b|(?<![\w.:-])\d{10,15}(?![\w.:-])")
_KEEP_LAST = 2


def mask_phone_number(number: str) -> str:
    """``+14155550123`` -> ``+*********23``: enough to tell calls apart, not to dial."""
    digits = number.lstrip("+")
    prefix = "+" if number.startswith("+") else ""
    return prefix + "*" * (len(digits) - _KEEP_LAST) + digits[-_KEEP_LAST:]


def _mask_text(text: str) -> str:
    return _PHONE.sub(lambda m: mask_phone_number(m.group(0)), text)


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
            path=request.path_qs,
            status=response.status,
            bytes=response.body_length,
            ms=round(time * 1000, 2),
            remote=request.remote,
        )


WEBHOOK_PREFIX = "/twilio/"


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
