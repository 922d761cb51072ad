"""The load generator (its own process): drives one scenario and prints JSON figures.

python bench/drive.py SCENARIO BASE_URL AUTH_TOKEN CONCURRENCY SECONDS
SCENARIO: constant | menu | commit | calls
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402

from ivr.simulator import FakeTwilio  # noqa: E402


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(scenario: str, base_url: str, token: str, concurrency: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        twilio = FakeTwilio(http, base_url, token)
        deadline = time.perf_counter() + seconds

        async def timed(coro):
            nonlocal errors
            started = time.perf_counter()
            answer = await coro
            latencies.append(time.perf_counter() - started)
            if answer.status >= 500 or "technical problem" in answer.body:
                errors += 1
            return answer

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                call = twilio.call()
                if scenario == "constant":
                    await timed(twilio.post(twilio.url("/twilio/answer?seq=0"), call.params() | {"Digits": "1"}))
                    continue
                if scenario == "calls":
                    started = time.perf_counter()
                    await call.dial()
                    await call.keys("2", "2")
                    answer = await call.press("1")
                    await call.hang_up()
                    latencies.append(time.perf_counter() - started)
                    errors += "recorded" not in answer.heard
                    continue
                await call.dial()
                if scenario == "menu":
                    await call.press("1")  # to a menu where * repeats the question
                    while time.perf_counter() < deadline:
                        await timed(call.press("*"))
                else:  # commit: to the read-back, then the measured confirm
                    await call.keys("2", "2")
                    await timed(call.press("1"))

        cpu_before, wall_before = cpu_seconds(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - wall_before
        driver_cpu = cpu_seconds() - cpu_before
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else 0.0

    return {
        "count": len(latencies),
        "wall_s": wall,
        "per_s": len(latencies) / wall,
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": latencies[-1] * 1000 if latencies else 0.0,
        "errors": errors,
        "driver_cpu_s": driver_cpu,
    }


if __name__ == "__main__":
    os.sched_setaffinity(0, {1})  # the driver on core 1, the server on core 0
    scenario, base_url, token, concurrency, seconds = sys.argv[1:6]
    print(json.dumps(asyncio.run(run(scenario, base_url, token, int(concurrency), float(seconds)))))
