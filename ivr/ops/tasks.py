"""Background work that lives as long as a cleanup context: started on entry, cancelled on exit."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from storage.background import stop

__all__ = ["in_background"]


@contextlib.asynccontextmanager
async def in_background(work: Coroutine[Any, Any, None], name: str) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``work`` while the block runs; cancel it, and wait for it to stop, when the block ends."""
    task = asyncio.create_task(work, name=name)
    try:
        yield task
    finally:
        await stop(task)
