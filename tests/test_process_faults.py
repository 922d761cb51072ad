"""Short runs of the process faults (the long ones: bench/faults.py): a process killed
behind a load balancer, and SIGTERM under load, for one process and for --workers 2."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import AUTH_TOKEN, Storage
from tests.process_faults import Store, drained_on_sigterm, one_of_two_killed

CALLS = 40


@pytest.fixture
def store(storage: Storage, tmp_path: Path) -> Store:
    return Store(storage.database_url, storage.redis_url, AUTH_TOKEN, tmp_path / "var")


def environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "PUBLIC_BASE_URL")}


def assert_reconciled(figures: dict[str, object]) -> None:
    assert figures["calls"] == CALLS
    assert figures["confirmed but missing"] == 0 and figures["duplicate decisions"] == 0
    assert figures["told recorded"] == figures["decisions in the ledger"]
    assert figures["decided although told nothing was recorded"] == 0
    assert figures["no answer at all (connection failed)"] == 0
    assert figures["told recorded"] + figures["told nothing was recorded"] == CALLS
    assert figures["HTTP 5xx to Twilio"] == 0 and figures["ivr verify intact"]


async def test_one_of_two_processes_killed_the_other_carries_the_calls(store: Store) -> None:
    figures = await one_of_two_killed(store, environ(), calls=CALLS, concurrency=20)

    # The killed process's call locks lapse within seconds (they are renewed only while
    # their holder lives), so every re-sent webhook is served, none told "nothing recorded"
    # for want of a lock, and none waits anywhere near Twilio's 15 s.
    assert_reconciled(figures)
    assert figures["survivor still serving at the end"]
    assert figures["requests re-sent to the survivor"] > 0
    assert figures["slowest answer to Twilio (s)"] < 10


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_drains_in_flight_webhooks_then_the_calls_carry_on(store: Store, workers: int) -> None:
    figures = await drained_on_sigterm(store, environ(), calls=CALLS, concurrency=20, workers=workers)

    assert_reconciled(figures)
    assert figures["in flight at SIGTERM, answered in full"] > 0
    # A connection still in the listen queue when the listener closes is reset unread (and
    # re-sent); one the service read is answered in full.
    assert figures["  of which the service had answered (answer lost)"] == 0
    assert figures["exit code"] == 0 and figures["SIGTERM to exit (s)"] < figures["stop bound (s)"]
    assert figures["ivr verify right after the exit"]
