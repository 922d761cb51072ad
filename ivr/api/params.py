"""Reading an API request's parameters: times, page sizes, ids; JSON answers.

Anything that does not parse is a 400 naming the parameter and what it should be.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from ivr.access.audit import has_nul
from ivr.api.errors import api_error

__all__ = ["MAX_PAGE", "fits_bigint", "json_response", "page_size", "refuse_nul", "time_param"]

MAX_PAGE = 500


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda obj: json.dumps(obj, default=str))


def time_param(raw: str | None, name: str) -> datetime | None:
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw)
        # In UTC now: an offset that pushes it past year 1 or 9999 fails here, not in the database driver.
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise api_error(400, f"{name} must be an ISO 8601 time, e.g. 2026-11-28T09:00:00Z") from exc


def page_size(raw: str) -> int:
    """A page size from the query (at most ``MAX_PAGE``), or 400."""
    try:
        limit = int(raw)
    except ValueError as exc:
        raise api_error(400, "limit must be a whole number") from exc
    if limit < 1:
        raise api_error(400, "limit must be at least 1")
    return min(limit, MAX_PAGE)


def fits_bigint(value: int) -> bool:
    """Whether Postgres can take ``value`` as a bigint (no row has an id beyond it)."""
    return -(2**63) <= value < 2**63


def refuse_nul(request: web.Request) -> None:
    """Postgres text cannot hold NUL: refuse it in anything of the request that reaches a query."""
    if has_nul(request):
        raise api_error(400, "NUL characters are not allowed in parameters")
