"""The load generator (its own process): drives one scenario and prints JSON figures.

    python bench/drive.py SCENARIO BASE_URL AUTH_TOKEN CONCURRENCY SECONDS [SERVER_PIDS]

constant  POST one fixed form again and again (the baselines, when wrk is not installed)
steps     calls dialed beforehand (not measured), then measured in two phases: menu steps
          alone (main menu, then the purpose menu: keys kept in the session), then the
          committing confirms alone (decision, keypresses and chain link written)
live      CONCURRENCY callers on the line at once, each pausing like a person between
          prompts (0.5-1.5 s), whole calls one after another: latency by kind of webhook
calls     whole calls back to back (dial, two menu keys, confirm, status callback): calls/s

Measured requests are signed like Twilio's and their answers checked, but not parsed as
XML (the next URL of each prompt is known), to keep the driver's own CPU low; dialing
uses the full simulator. SERVER_PIDS (comma-separated) lets the driver read the server's
CPU at each phase's edges.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402
from yarl import URL  # noqa: E402

from ivr.cli.simulator import FakeCall, FakeTwilio  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
THINK_S = (0.5, 1.5)
# Calls dialed ahead per second of a measured phase: more than the menu phase can use.
PREPARED_PER_S = 1500


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def server_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


class Phase:
    """Latencies and errors of one measured phase, with the CPU both sides spent in it."""

    def __init__(self, pids: list[int]) -> None:
        self.pids, self.latencies, self.errors = pids, [], 0
        self.cpu, self.wall, self.server = cpu_seconds(), time.perf_counter(), server_cpu(pids) if pids else 0.0

    def figures(self) -> dict:
        wall = time.perf_counter() - self.wall
        lat = sorted(self.latencies)

        def pct(q: float) -> float:
            return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else 0.0

        server = (server_cpu(self.pids) - self.server) if self.pids else 0.0
        return {
            "count": len(lat),
            "wall_s": wall,
            "per_s": len(lat) / wall,
            "p50_ms": pct(0.50),
            "p90_ms": pct(0.90),
            "p99_ms": pct(0.99),
            "max_ms": lat[-1] * 1000 if lat else 0.0,
            "errors": self.errors,
            "driver_cpu_s": cpu_seconds() - self.cpu,
            "server_cpu_ms_per_req": server * 1000 / max(len(lat), 1),
        }


async def press(twilio: FakeTwilio, call: FakeCall, seq: int, digits: str, expect: str, phase: Phase) -> None:
    """One keypress webhook, signed, timed and checked (the answer's text must contain ``expect``)."""
    url = twilio.url(f"/twilio/answer?seq={seq}")
    params = call.params() | {"Digits": digits, "FinishedOnKey": "", "msg": "Gather End"}
    headers = {
        "X-Twilio-Signature": twilio.sign(url, params),
        "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    started = time.perf_counter()
    async with twilio.http.post(URL(url, encoded=True), data=params, headers=headers) as resp:
        body = await resp.text()
    phase.latencies.append(time.perf_counter() - started)
    if resp.status != 200 or expect not in body:
        phase.errors += 1


async def steps(twilio: FakeTwilio, concurrency: int, seconds: float, pids: list[int]) -> dict:
    prepared: list[FakeCall] = []

    async def dial(count: int) -> None:
        for _ in range(count):
            call = twilio.call()
            await call.dial()
            prepared.append(call)

    total = int(PREPARED_PER_S * seconds)
    await asyncio.gather(*(dial(total // concurrency) for _ in range(concurrency)))
    figures, dialed = {}, list(prepared)
    for name, keys in (("menu", MENU_KEYS), ("commit", COMMIT_KEYS)):
        phase, queue, done = Phase(pids), list(prepared), []
        deadline = time.perf_counter() + seconds
        await asyncio.gather(*(_work_through(twilio, queue, done, keys, phase, deadline) for _ in range(concurrency)))
        figures[name] = phase.figures()
        prepared = done  # the commit phase confirms only calls that reached the read-back

    async def hang_up(calls: list[FakeCall]) -> None:
        while calls:
            await calls.pop().hang_up()

    await asyncio.gather(*(hang_up(dialed) for _ in range(concurrency)))  # not measured: leaves Redis to live calls
    return figures


MENU_KEYS = (("2", 0, "marketing calls"), ("2", 1, "To confirm"))
COMMIT_KEYS = (("1", 2, "recorded"),)


async def _work_through(
    twilio: FakeTwilio,
    queue: list[FakeCall],
    done: list[FakeCall],
    keys: tuple[tuple[str, int, str], ...],
    phase: Phase,
    deadline: float,
) -> None:
    while queue and time.perf_counter() < deadline:
        call = queue.pop()
        for digits, seq, expect in keys:
            await press(twilio, call, seq, digits, expect, phase)
        done.append(call)


async def whole_call(twilio: FakeTwilio, phases: dict[str, Phase], think: tuple[float, float] | None) -> bool:
    async def pause() -> None:
        if think:
            await asyncio.sleep(random.uniform(*think))

    call = twilio.call()
    started = time.perf_counter()
    await call.dial()
    phases["dial"].latencies.append(time.perf_counter() - started)
    await pause()
    await press(twilio, call, 0, "2", "marketing calls", phases["menu"])
    await pause()
    await press(twilio, call, 1, "2", "To confirm", phases["menu"])
    await pause()
    errors = phases["commit"].errors
    await press(twilio, call, 2, "1", "recorded", phases["commit"])
    await call.hang_up()
    return phases["commit"].errors == errors


async def live(twilio: FakeTwilio, concurrency: int, seconds: float, pids: list[int]) -> dict:
    phases = {kind: Phase(pids) for kind in ("dial", "menu", "commit")}
    deadline = time.perf_counter() + seconds

    async def caller() -> None:
        await asyncio.sleep(random.uniform(0, THINK_S[1]))  # callers do not all ring at once
        while time.perf_counter() < deadline:
            await whole_call(twilio, phases, THINK_S)

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return {kind: phase.figures() for kind, phase in phases.items()}


async def calls(twilio: FakeTwilio, concurrency: int, seconds: float, pids: list[int]) -> dict:
    phases = {kind: Phase(pids) for kind in ("dial", "menu", "commit")}
    whole, deadline = Phase(pids), time.perf_counter() + seconds

    async def caller() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            whole.errors += not await whole_call(twilio, phases, None)
            whole.latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return {"calls": whole.figures()}


async def constant(twilio: FakeTwilio, concurrency: int, seconds: float, pids: list[int]) -> dict:
    phase, deadline = Phase(pids), time.perf_counter() + seconds

    async def worker() -> None:
        call = twilio.call()
        while time.perf_counter() < deadline:
            await press(twilio, call, 0, "1", "Gather", phase)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"constant": phase.figures()}


SCENARIOS = {"steps": steps, "live": live, "calls": calls, "constant": constant}


async def run(scenario: str, base_url: str, token: str, concurrency: int, seconds: float, pids: list[int]) -> dict:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        return await SCENARIOS[scenario](FakeTwilio(http, base_url, token), concurrency, seconds, pids)


if __name__ == "__main__":
    if os.environ.get("DRIVER_CORE"):
        os.sched_setaffinity(0, {int(os.environ["DRIVER_CORE"])})
    scenario, base_url, token, concurrency, seconds = sys.argv[1:6]
    pids = [int(p) for p in sys.argv[6].split(",")] if len(sys.argv) > 6 and sys.argv[6] else []
    print(json.dumps(asyncio.run(run(scenario, base_url, token, int(concurrency), float(seconds), pids))))
