"""``ivr serve --workers N``: N processes on one port (SO_REUSEPORT), one supervisor.

The supervisor starts the embedded Postgres and Redis when none is configured (so the
workers share them), hands every worker the resolved URLs, forwards SIGINT/SIGTERM,
waits for the workers to drain, then stops what it started. Workers are ordinary
``ivr serve`` processes: everything about a call lives in Redis and Postgres, so a
call's webhooks may land on any of them.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from storage.embedded import embedded_postgres, embedded_redis

__all__ = ["supervise"]

# Longer than a worker's own shutdown (it drains for up to 10 s), shorter than patience.
STOP_WAIT_S = 20


def supervise(workers: int, host: str, port: int, environ: Mapping[str, str], data_dir: Path) -> int:
    """Run ``workers`` worker processes until a signal; their worst exit code."""
    with contextlib.ExitStack() as stack:
        env = dict(environ)
        if not env.get("DATABASE_URL"):
            env["DATABASE_URL"] = stack.enter_context(embedded_postgres(data_dir))
        if not env.get("REDIS_URL"):
            env["REDIS_URL"] = stack.enter_context(embedded_redis(data_dir))
        args = [sys.executable, "-m", "ivr", "serve", "--host", host, "--port", str(port), "--reuse-port"]
        children = [subprocess.Popen(args, env=env) for _ in range(workers)]

        def forward(signum: int, _frame: object) -> None:
            for child in children:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signum)

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, forward)
        codes = []
        for child in children:
            try:
                codes.append(child.wait())
            except KeyboardInterrupt:  # a second Ctrl-C: stop waiting politely
                child.kill()
                codes.append(child.wait())
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(STOP_WAIT_S)
        return max((abs(code) if code not in (0, -signal.SIGINT, -signal.SIGTERM) else 0) for code in codes)
