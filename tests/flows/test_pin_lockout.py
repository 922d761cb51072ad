"""The PIN lockout, from the wrong PINs alone: longer and longer locks, then one only staff lift."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flows.pin_lockout import HARD_LOCK_IN_ALL, PinEntry, pin_entry

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)


def guesses_at(*offsets: timedelta) -> PinEntry:
    return pin_entry(T0 + offset for offset in offsets)


def test_four_wrong_pins_lock_nothing_and_the_fifth_locks_for_fifteen_minutes() -> None:
    four = guesses_at(*(n * MINUTE for n in range(4)))
    five = guesses_at(*(n * MINUTE for n in range(5)))

    assert not four.locked_at(T0 + 4 * MINUTE)
    assert five.remaining_s(T0 + 4 * MINUTE) == 15 * 60
    assert five.locked_at(T0 + 18 * MINUTE) and not five.locked_at(T0 + 19 * MINUTE)


def test_each_guess_after_a_lock_ends_locks_for_longer() -> None:
    five = [n * MINUTE for n in range(5)]
    sixth = guesses_at(*five, 20 * MINUTE)
    seventh = guesses_at(*five, 20 * MINUTE, 90 * MINUTE)
    eighth = guesses_at(*five, 20 * MINUTE, 90 * MINUTE, 6 * HOUR)

    assert sixth.remaining_s(T0 + 20 * MINUTE) == 3600
    assert seventh.remaining_s(T0 + 90 * MINUTE) == 4 * 3600
    assert eighth.remaining_s(T0 + 6 * HOUR) == 4 * 3600  # the last step repeats
    assert not seventh.hard_locked and not eighth.hard_locked


def test_a_pin_typed_during_a_lock_is_refused_and_neither_counts_nor_lengthens_it() -> None:
    five = [n * MINUTE for n in range(5)]
    retried = guesses_at(*five, 6 * MINUTE, 7 * MINUTE, 10 * MINUTE)  # all inside the 15 minutes

    assert len(retried.guesses) == 5
    assert retried.locked_until == T0 + 4 * MINUTE + 15 * MINUTE


def test_ten_guesses_within_a_day_lock_until_staff_lift_it() -> None:
    # As fast as the locks allow: each guess the moment the last lock ends.
    at, offsets = timedelta(0), []
    entry = PinEntry()
    while not entry.hard_locked:
        offsets.append(at)
        entry = entry.after(T0 + at)
        at = (entry.locked_until - T0) if entry.locked_at(T0 + at) else at + MINUTE

    assert len(entry.guesses) == 10 and offsets[-1] < timedelta(hours=24)
    assert entry.hard_locked_at == T0 + offsets[-1]
    later = T0 + timedelta(days=30)
    assert entry.locked_at(later) and entry.remaining_s(later) is None  # no end of its own


def test_a_guesser_pacing_under_the_daily_limit_is_stopped_at_twenty() -> None:
    # Five a day, each a day apart from the last five: never ten within 24 hours.
    offsets = [day * 30 * HOUR + n * 5 * HOUR for day in range(5) for n in range(5)]
    entry = guesses_at(*offsets)

    assert len(entry.guesses) == HARD_LOCK_IN_ALL and entry.hard_locked
    assert entry.hard_locked_at == T0 + offsets[HARD_LOCK_IN_ALL - 1]


def test_nothing_after_a_hard_lock_is_read() -> None:
    """Refused tries after a hard lock can pile up; the replay stops where it locked."""
    paced = [n * MINUTE for n in range(5)] + [20 * MINUTE, 90 * MINUTE, 6 * HOUR, 10.5 * HOUR, 15 * HOUR]

    def failures():
        yield from (T0 + offset for offset in paced)
        raise AssertionError("read past the hard lock")

    assert pin_entry(failures()).hard_locked_at == T0 + 15 * HOUR
