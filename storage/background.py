"""Stopping background work for certain, on the Python versions the service supports.

On Python 3.11 ``asyncio.wait_for`` (which asyncpg's ``acquire(timeout=…)`` and our own
time budgets use) swallows a cancellation that arrives as the awaited thing finishes
(bpo-42130, fixed in 3.12). A loop caught at that moment goes on running, and a shutdown
that cancelled it once and waits for it never ends. So cancellation is repeated until
the task has stopped, and given up (with the task left to the loop's end) after a bound.
"""

from __future__ import annotations

import asyncio
import logging

__all__ = ["stop"]

log = logging.getLogger(__name__)

_RETRY_EVERY_S = 0.5
STOP_WITHIN_S = 15.0


async def stop(task: asyncio.Task[object]) -> None:
    """Cancel ``task`` and wait until it has stopped (cancelling again if it swallowed one)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STOP_WITHIN_S
    while not task.done():
        if loop.time() > deadline:
            log.warning("background task %s did not stop within %.0f s", task.get_name(), STOP_WITHIN_S)
            return
        task.cancel()
        await asyncio.wait([task], timeout=_RETRY_EVERY_S)
    if not task.cancelled() and task.exception() is not None:
        log.warning("background task %s had failed: %r", task.get_name(), task.exception())
