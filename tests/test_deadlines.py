"""Ten business days, counted without weekends or US federal holidays."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from storage.deadlines import honor_deadline, local_date


def test_a_plain_fortnight_of_business_days() -> None:
    # Monday 2026-03-02: ten business days later is Monday 2026-03-16.
    assert honor_deadline(date(2026, 3, 2), 10) == date(2026, 3, 16)


def test_a_weekend_receipt_starts_counting_on_monday() -> None:
    # Saturday 2026-03-07: Mon 9 is day 1 … Fri 20 is day 10.
    assert honor_deadline(date(2026, 3, 7), 10) == date(2026, 3, 20)


def test_thanksgiving_and_a_weekend_are_skipped() -> None:
    # Wednesday 2026-11-25: Thanksgiving (Thu 26) is not a business day; Fri 27 is day 1.
    assert honor_deadline(date(2026, 11, 25), 10) == date(2026, 12, 10)


def test_christmas_and_new_year_observed_are_skipped() -> None:
    # Thursday 2026-12-24: Christmas Fri 25 and New Year Fri 2027-01-01 are holidays.
    assert honor_deadline(date(2026, 12, 24), 10) == date(2027, 1, 11)


EASTERN = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("received_utc", "honor_by"),
    [
        # 21:00 Eastern on Thursday 2026-12-17 is already Friday in UTC: counted from the 17th,
        # ten business days (Christmas and New Year's Day skipped) end on Monday 2027-01-04.
        ("2026-12-18T02:00:00+00:00", date(2027, 1, 4)),
        # 23:30 Eastern (EST) on Tuesday 2026-02-10 is 04:30 UTC on the 11th: counted from the
        # 10th, with Presidents' Day (Monday 16 February) skipped.
        ("2026-02-11T04:30:00+00:00", date(2026, 2, 25)),
        # The same clock time in summer (EDT, UTC-4): 23:30 on Tuesday 2026-07-14.
        ("2026-07-15T03:30:00+00:00", date(2026, 7, 28)),
    ],
)
def test_honor_by_counts_from_the_local_date_of_receipt(received_utc: str, honor_by: date) -> None:
    received = datetime.fromisoformat(received_utc)
    assert honor_deadline(local_date(received, EASTERN), 10) == honor_by
    assert honor_deadline(received.date(), 10) != honor_by  # the UTC date would give a day more


@pytest.mark.parametrize(
    ("received", "honor_by"),
    [
        (date(2026, 11, 25), date(2026, 12, 10)),  # Thanksgiving (Thu 26 Nov)
        (date(2026, 12, 24), date(2027, 1, 11)),  # Christmas and New Year's Day (both Fridays)
        (date(2027, 12, 30), date(2028, 1, 14)),  # New Year's Day 2028, a Saturday, observed on Friday 31 Dec
        (date(2026, 3, 7), date(2026, 3, 20)),  # a Saturday: counting starts on Monday
        (date(2026, 3, 6), date(2026, 3, 20)),  # a Friday: the weekend does not count
    ],
)
def test_honor_by_skips_weekends_and_federal_holidays(received: date, honor_by: date) -> None:
    assert honor_deadline(received, 10) == honor_by
