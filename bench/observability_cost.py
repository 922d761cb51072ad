"""What one webhook's log line and metrics cost, in CPU, through the service's own pipeline.

    python bench/observability_cost.py [--lines 20000]

Throughput comparisons with and without logs move by ±20% from run to run on a shared
2-core machine; the CPU of the work itself does not. This times, in this process, the
access line every webhook writes (structlog through the stdlib handler, phone numbers
masked, JSON) and the metrics every webhook records, and prints them beside the CPU a
menu step costs the server in total (pass the figure from bench/webhooks.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import structlog  # noqa: E402

from ivr.ops.logs import configure_logging  # noqa: E402
from ivr.ops.metrics import Metrics  # noqa: E402


def per_call_us(work, count: int) -> float:
    started = time.process_time()
    for n in range(count):
        work(n)
    return (time.process_time() - started) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--menu-step-ms", type=float, default=None, help="server CPU per menu step, for the share")
    opts = parser.parse_args()
    configure_logging("INFO", "json")
    devnull = open(os.devnull, "w")  # noqa: SIM115 - kept open for the whole run
    logging.getLogger().handlers[0].stream = devnull  # type: ignore[attr-defined]
    access = structlog.get_logger("aiohttp.access")
    structlog.contextvars.bind_contextvars(call_sid="CA0123456789abcdef0123456789abcdef")

    def log_line(n: int) -> None:
        access.info(
            "request",
            method="POST",
            path=f"/twilio/answer?seq={n % 9}",
            status=200,
            bytes=1041,
            ms=1.83,
            remote="127.0.0.1",
        )

    metrics = Metrics()

    def record(n: int) -> None:
        metrics.webhook_seconds.labels("/twilio/answer").observe(0.0021)
        metrics.call_steps.labels("menu").observe(0.0017)

    log_us = per_call_us(log_line, opts.lines)
    webhook_us = per_call_us(lambda n: access.debug("request", method="POST", path="/twilio/answer?seq=1"), opts.lines)
    metrics_us = per_call_us(record, opts.lines)
    logging.getLogger().setLevel("WARNING")
    filtered_us = per_call_us(log_line, opts.lines)
    print(f"an access line (INFO, JSON, masked):           {log_us:6.1f} us CPU")
    print(f"an answered webhook's line (DEBUG, filtered):  {webhook_us:6.1f} us CPU")
    print(f"the same call with LOG_LEVEL=WARNING:          {filtered_us:6.1f} us CPU")
    print(f"metrics per webhook (two histograms):          {metrics_us:6.1f} us CPU")
    if opts.menu_step_ms:
        whole = opts.menu_step_ms * 1000
        logs, metered = webhook_us / whole * 100, metrics_us / whole * 100
        print(f"share of a menu step's {whole:.0f} us: logs (as deployed) {logs:.1f}%, metrics {metered:.1f}%")


if __name__ == "__main__":
    main()
