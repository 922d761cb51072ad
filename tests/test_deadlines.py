"""Ten business days, counted without weekends or US federal holidays."""

from __future__ import annotations

from datetime import date

from storage.deadlines import honor_deadline


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
