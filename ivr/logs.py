"""Logging: structlog on top of the standard library, with phone numbers masked everywhere.

Every record, ours or a library's (aiohttp's access log included), passes through
``mask_phone_numbers`` before it is rendered, so a caller's number never reaches a
log file whole (DESIGN rule 7).
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

__all__ = ["configure_logging", "mask_phone_number", "mask_phone_numbers"]

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


def mask_phone_numbers(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: mask phone numbers in every value of the event."""
    return {key: _mask_value(value) for key, value in event_dict.items()}


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
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
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
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
