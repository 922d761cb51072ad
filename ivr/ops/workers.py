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
import time
from collections.abc import Mapping
from pathlib import Path

from storage.embedded import embedded_postgres, embedded_redis

__all__ = ["supervise"]

# Longer than a worker's own drain (up to Twilio's 15 s for its last webhooks, then its
# cleanup); a worker still running after this is stuck, and is killed.
STOP_WAIT_S = 30


def supervise(workers: int, host: str, port: int, environ: Mapping[str, str], data_dir: Path) -> int:
    """Run ``workers`` worker processes until a signal; their worst exit code."""
    with contextlib.ExitStack() as stack:
        env = dict(environ)
        if not env.get("DATABASE_URL"):
            env["DATABASE_URL"] = stack.enter_context(embedded_postgres(data_dir))
        if not env.get("REDIS_URL"):
            env["REDIS_URL"] = stack.enter_context(embedded_redis(data_dir))
        args = [sys.executable, "-m", "ivr", "serve", "--host", host, "--port", str(port), "--reuse-port"]
        # Sessions of their own: a Ctrl-C at the terminal reaches the supervisor only, which
        # forwards it once; a second copy straight from the terminal is not sent to a worker
        # that is already draining.
        children = [subprocess.Popen(args, env=env, start_new_session=True) for _ in range(workers)]
        stopping: list[float] = []

        def forward(signum: int, _frame: object) -> None:
            if not stopping:
                stopping.append(time.monotonic())
            for child in children:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signum)

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, forward)
        codes = [_wait(child, stopping) for child in children]
        return max((abs(code) if code not in (0, -signal.SIGINT, -signal.SIGTERM) else 0) for code in codes)


def _wait(child: subprocess.Popen[bytes], stopping: list[float]) -> int:
    """The worker's exit code; once a stop was forwarded, it gets STOP_WAIT_S to drain, then is killed."""
    while True:
        timeout = None if not stopping else max(0.0, stopping[0] + STOP_WAIT_S - time.monotonic())
        try:
            # Short waits until a stop comes, so that its deadline applies to a wait already under way.
            return child.wait(1.0 if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            if stopping and time.monotonic() >= stopping[0] + STOP_WAIT_S:
                child.kill()
                return child.wait()
