"""Memory soak: does ``ivr serve`` hold a flat RSS under a steady load of whole calls?

    python bench/soak.py [--minutes 10] [--warmup-s 60] [--rate 10] [--concurrency 20]
      [--dsn postgresql://postgres@127.0.0.1:5432/postgres] [--redis redis://127.0.0.1:6379/0]
      [--embedded]

Starts ``ivr serve`` from this checkout as its own process, against a fresh database
created on the --dsn server (dropped at the end) and the --redis server (--embedded:
Postgres and Redis from Python wheels instead). Calls are placed at a constant rate
like Twilio places them: signed webhooks, following the TwiML, through a consent
decision to its read-back, then the status callback. The server's RSS is sampled every
--sample-s seconds; the verdict compares the last sample with the first one after the
warm-up: within ±10% is "flat". Redis is measured before and after (used_memory, and
the service's keys left by kind, with any that would never expire).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from xml.etree.ElementTree import ParseError

import aiohttp
import asyncpg
import psutil
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ivr.cli.simulator import FakeTwilio  # noqa: E402
from storage.embedded import embedded_postgres, embedded_redis  # noqa: E402

TOKEN = "soak-" + secrets.token_hex(8)
FLAT_WITHIN = 0.10
# Key prefixes the service writes (storage/keys.py and its neighbours), for the census.
KEY_KINDS = ("ivr:call:", "ivr:lock:", "ivr:web:", "ivr:rate:", "ivr:")


@dataclass
class Tally:
    completed: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    seconds: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Sample:
    at_s: float
    rss_mb: float
    calls: int


def pin(core: int) -> None:
    # As in bench/webhooks.py: the server and the load on different cores, when there are two.
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {core})


async def one_call(twilio: FakeTwilio, tally: Tally) -> None:
    started = time.perf_counter()
    try:
        call = twilio.call()
        await call.dial()
        await call.keys("2", "2")
        answer = await call.press("1")
        ended = await call.hang_up()
    # The simulator asserts, or cannot parse, when an answer is not the TwiML a call needs next.
    except (TimeoutError, aiohttp.ClientError, AssertionError, ParseError) as exc:
        tally.failed += 1
        tally.errors[type(exc).__name__] += 1
        return
    if "recorded" not in answer.heard or ended.status != 200:
        tally.failed += 1
        tally.errors[f"HTTP {answer.status}/{ended.status} or not recorded"] += 1
        return
    tally.completed += 1
    tally.seconds.append(time.perf_counter() - started)


async def place_calls(base_url: str, rate: float, concurrency: int, seconds: float, tally: Tally) -> None:
    """Calls start on a fixed schedule (``rate`` a second), never more than ``concurrency``
    at once: a slow server makes the schedule slip rather than the load pile up."""
    gate = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=15)  # Twilio's own budget for a webhook
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency), timeout=timeout) as http:
        twilio = FakeTwilio(http, base_url, TOKEN)
        running: set[asyncio.Task[None]] = set()
        start = time.perf_counter()
        placed = 0
        while (now := time.perf_counter() - start) < seconds:
            await asyncio.sleep(max(0.0, placed / rate - now))
            await gate.acquire()
            task = asyncio.create_task(one_call(twilio, tally))
            task.add_done_callback(lambda _t: gate.release())
            running.add(task)
            task.add_done_callback(running.discard)
            placed += 1
        await asyncio.gather(*running)


class RssSampler:
    """The server's resident set, every ``every_s`` seconds, on one clock."""

    def __init__(self, pid: int, tally: Tally) -> None:
        self.proc, self.tally = psutil.Process(pid), tally
        self.samples: list[Sample] = []
        self.start = time.perf_counter()

    def take(self) -> None:
        at = time.perf_counter() - self.start
        self.samples.append(Sample(at, self.proc.memory_info().rss / 2**20, self.tally.completed))

    async def run(self, every_s: float) -> None:
        while True:
            self.take()
            await asyncio.sleep(every_s)


async def redis_census(url: str) -> dict[str, int]:
    """used_memory of the whole server, and the service's keys in this database by kind."""
    redis = Redis.from_url(url, decode_responses=True)
    try:
        census: Counter[str] = Counter()
        async for key in redis.scan_iter("ivr:*", count=1000):
            census[next(kind for kind in KEY_KINDS if key.startswith(kind))] += 1
            # A key with no expiry outlives every call: that, not the count, is a leak.
            census["never expiring"] += await redis.ttl(key) == -1
        census["used_memory"] = int((await redis.info("memory"))["used_memory"])
        return dict(census)
    finally:
        await redis.aclose()


async def wait_ready(url: str, proc: subprocess.Popen) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            if proc.poll() is not None:
                raise RuntimeError(f"ivr serve exited with {proc.returncode} before it was ready")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(url + "/readyz") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} never became ready")


@contextlib.contextmanager
def server(dsn: str, redis_url: str, port: int):
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ) | {
        "DATABASE_URL": dsn,
        "REDIS_URL": redis_url,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "PUBLIC_BASE_URL": url,
        "LOG_LEVEL": "WARNING",
        "IVR_DATA_DIR": tempfile.mkdtemp(prefix="ivr-soak-data-"),
        # The code under test is this checkout's, whatever is installed in the environment.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "ivr", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        preexec_fn=lambda: pin(0),
        stdout=subprocess.DEVNULL,
    )
    try:
        yield proc, url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def verdict(samples: list[Sample], warmup_s: float) -> tuple[str, Sample, Sample, float]:
    """flat / growing / shrinking, the samples compared, and the post-warm-up slope (MB/min)."""
    after = [s for s in samples if s.at_s >= warmup_s] or samples[-1:]
    base, last = after[0], samples[-1]
    n = len(after)
    mean_t = sum(s.at_s for s in after) / n
    mean_m = sum(s.rss_mb for s in after) / n
    spread = sum((s.at_s - mean_t) ** 2 for s in after)
    slope = sum((s.at_s - mean_t) * (s.rss_mb - mean_m) for s in after) / spread * 60 if spread else 0.0
    change = (last.rss_mb - base.rss_mb) / base.rss_mb
    word = "flat" if abs(change) <= FLAT_WITHIN else ("growing" if change > 0 else "shrinking")
    return word, base, last, slope


def report(opts: argparse.Namespace, tally: Tally, samples: list[Sample], before: dict, after: dict) -> bool:
    print(f"\n{'t (s)':>7} {'RSS (MB)':>9} {'calls':>7}")
    for s in samples:
        print(f"{s.at_s:7.0f} {s.rss_mb:9.1f} {s.calls:7d}")
    took = sorted(tally.seconds) or [0.0]
    elapsed = opts.minutes * 60
    print(
        f"\ncalls completed {tally.completed} ({tally.completed / elapsed:.1f}/s of {opts.rate:g}/s asked), "
        f"failed {tally.failed}{' ' + str(dict(tally.errors)) if tally.errors else ''}; "
        f"whole call p50 {took[len(took) // 2] * 1000:.0f} ms, "
        f"p99 {took[min(len(took) - 1, int(len(took) * 0.99))] * 1000:.0f} ms"
    )
    mb = 2**20
    grew = after.get("used_memory", 0) - before.get("used_memory", 0)
    print(
        f"Redis used_memory {before.get('used_memory', 0) / mb:.1f} MB -> {after.get('used_memory', 0) / mb:.1f} MB "
        f"({grew / max(tally.completed, 1):.0f} bytes per completed call; the whole server, shared or not)"
    )
    print(f"Redis keys before: {_keys(before)}")
    print(f"Redis keys after:  {_keys(after)}  (sessions: 5 h after a live call's last webhook, 2 min once ended)")
    word, base, last, slope = verdict(samples, opts.warmup_s)
    change = (last.rss_mb - base.rss_mb) / base.rss_mb * 100
    print(
        f"\nRSS after warm-up (t={base.at_s:.0f} s) {base.rss_mb:.1f} MB, at the end (t={last.at_s:.0f} s) "
        f"{last.rss_mb:.1f} MB: {change:+.1f}%, slope {slope:+.2f} MB/min -> {word.upper()} "
        f"(flat means within ±{FLAT_WITHIN:.0%})"
    )
    leaked = after.get("never expiring", 0) - before.get("never expiring", 0)
    return word == "flat" and tally.failed == 0 and leaked <= 0


def _keys(census: dict[str, int]) -> str:
    return ", ".join(f"{kind} {census[kind]}" for kind in (*KEY_KINDS, "never expiring") if census.get(kind)) or "none"


async def soak(opts: argparse.Namespace, dsn: str, redis_url: str) -> bool:
    tally = Tally()
    before = await redis_census(redis_url)
    with server(dsn, redis_url, opts.port) as (proc, url):
        await wait_ready(url, proc)
        print(f"ivr serve pid {proc.pid} on {url}; {opts.rate:g} calls/s for {opts.minutes:g} min", flush=True)
        sampler = RssSampler(proc.pid, tally)
        ticking = asyncio.create_task(sampler.run(opts.sample_s))
        await place_calls(url, opts.rate, opts.concurrency, opts.minutes * 60, tally)
        ticking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticking
        sampler.take()  # after the last call, however far that is from the last tick
    after = await redis_census(redis_url)
    return report(opts, tally, sampler.samples, before, after)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--warmup-s", type=float, default=60, help="RSS is compared from the first sample after this")
    parser.add_argument("--rate", type=float, default=10, help="calls started a second")
    parser.add_argument("--concurrency", type=int, default=20, help="calls in flight at most")
    parser.add_argument("--sample-s", type=float, default=10)
    parser.add_argument("--port", type=int, default=18300)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--embedded", action="store_true", help="Postgres and Redis from wheels, not --dsn/--redis")
    opts = parser.parse_args()
    if opts.warmup_s >= opts.minutes * 60:
        parser.error("--warmup-s must be shorter than the run, or nothing is left to compare")
    pin(1)
    with contextlib.ExitStack() as stack:
        data = Path(tempfile.mkdtemp(prefix="ivr-soak-"))
        server_dsn = stack.enter_context(embedded_postgres(data)) if opts.embedded else opts.dsn
        redis_url = stack.enter_context(embedded_redis(data)) if opts.embedded else opts.redis
        name = "ivr_soak_" + secrets.token_hex(4)
        admin = await asyncpg.connect(server_dsn)
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            ok = await soak(opts, urlunsplit(urlsplit(server_dsn)._replace(path="/" + name)), redis_url)
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            await admin.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
