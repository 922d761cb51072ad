"""When PIN entry on an account is locked, worked out from its PIN checks alone.

Pure: the service hands over the times of an account's wrong PINs since its last right
PIN or staff unlock (the chained ``pin_checks`` rows, oldest first), and this says which
of them were guesses and what lock they leave. No counter is kept anywhere: the
evidence is the state, so a restart, a second process or ``ivr verify`` reads the same.

A wrong PIN typed while entry was locked was never checked: it is kept as evidence but
is not a guess and does not lengthen the lock (a customer retrying during a lock is not
punished for it). Guesses escalate:

- the 5th locks entry for 15 minutes, the 6th for an hour, each later one for 4 hours;
- the 10th within 24 hours, or the 20th since the last right PIN however slowly they
  came, locks it until staff restore it (``ivr customers unlock``).

So a guesser gets 10 tries at an account, then staff must act; at most 20 ever, even
paced to stay under the daily limit (which 4-hour locks would otherwise allow, six a
day for good).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = [
    "GUESSES_BEFORE_LOCKING",
    "HARD_LOCK_IN_A_DAY",
    "HARD_LOCK_IN_ALL",
    "LOCK_STEPS",
    "PinEntry",
    "pin_entry",
]

# Five tries before any lock: a customer who mistypes, or half-remembers, still gets in.
GUESSES_BEFORE_LOCKING = 5
# The lock each guess from the 5th on starts: the 5th 15 minutes, the 6th an hour, and
# every later one 4 hours (the last step repeats), so guessing slows to a crawl.
LOCK_STEPS = (timedelta(minutes=15), timedelta(hours=1), timedelta(hours=4))
# Ten guesses inside a day can only come from someone trying every lock's end: a hard
# lock, lifted only by staff. Twenty in all catches a guesser pacing under that.
HARD_LOCK_IN_A_DAY = 10
HARD_LOCK_IN_ALL = 20
DAY = timedelta(hours=24)


@dataclass(frozen=True)
class PinEntry:
    """What an account's wrong PINs (since its last right PIN or unlock) leave behind."""

    guesses: tuple[datetime, ...] = ()  # the wrong PINs that were checked (not refused)
    locked_until: datetime | None = None  # the end of the latest lock, past or not
    hard_locked_at: datetime | None = None  # the guess that locked entry until staff lift it

    @property
    def hard_locked(self) -> bool:
        return self.hard_locked_at is not None

    def locked_at(self, now: datetime) -> bool:
        """Whether a PIN typed at ``now`` is refused unchecked."""
        return self.hard_locked or (self.locked_until is not None and now < self.locked_until)

    def remaining_s(self, now: datetime) -> int | None:
        """Seconds the lock still runs at ``now``: None for a hard lock or none at all."""
        if self.hard_locked or self.locked_until is None or now >= self.locked_until:
            return None
        return max(1, math.ceil((self.locked_until - now).total_seconds()))

    def after(self, at: datetime) -> PinEntry:
        """The entry after a wrong PIN at ``at`` (refused if entry was locked then)."""
        if self.locked_at(at):
            return self
        guesses = self.guesses + (at,)
        in_a_day = sum(1 for t in guesses if t > at - DAY)
        if in_a_day >= HARD_LOCK_IN_A_DAY or len(guesses) >= HARD_LOCK_IN_ALL:
            return PinEntry(guesses, self.locked_until, hard_locked_at=at)
        if len(guesses) < GUESSES_BEFORE_LOCKING:
            return PinEntry(guesses, self.locked_until)
        step = LOCK_STEPS[min(len(guesses) - GUESSES_BEFORE_LOCKING, len(LOCK_STEPS) - 1)]
        return PinEntry(guesses, at + step)


def pin_entry(failures: Iterable[datetime]) -> PinEntry:
    """Replay an account's wrong PINs (oldest first) since its last right PIN or unlock."""
    entry = PinEntry()
    for at in failures:
        entry = entry.after(at)
        if entry.hard_locked:
            break  # whatever follows was refused
    return entry
