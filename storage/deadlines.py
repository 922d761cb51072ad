"""Business-day deadlines: a revocation received today must be honored within N business days.

Business days are Monday to Friday except US federal holidays (as observed), taken
from the ``holidays`` package rather than a hand-kept list. Days are counted from the
date the revocation was received in the business's own time zone (a revocation at
21:00 in New York is received that day, not the next UTC day); the deadline is the Nth
business day after (docs/consent-rules.md, CR-12).
"""

from __future__ import annotations

import functools
from datetime import date, datetime, timedelta, tzinfo

import holidays

__all__ = ["honor_deadline", "local_date"]


def local_date(moment: datetime, business_tz: tzinfo) -> date:
    """The calendar date of ``moment`` (an aware time) where the business is."""
    return moment.astimezone(business_tz).date()


@functools.lru_cache(maxsize=64)  # one answer per day and purpose; building the calendar is slow
def honor_deadline(received: date, business_days: int) -> date:
    federal = holidays.country_holidays("US", years=range(received.year, received.year + 2 + business_days // 200))
    day, counted = received, 0
    while counted < business_days:
        day += timedelta(days=1)
        if day.weekday() < 5 and day not in federal:
            counted += 1
    return day
