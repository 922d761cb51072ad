"""Webhook speed, ours against baselines, in one run on this machine (loopback only).

    python bench/webhooks.py [--seconds 8] [--concurrency 50]
      [--dsn postgresql://postgres@127.0.0.1/postgres] [--redis redis://127.0.0.1:6379/0]

Without --dsn/--redis it starts the embedded Postgres and Redis. Every server runs
pinned to core 0 and the load generator (bench/drive.py, its own process) to core 1;
the driver's own CPU is printed so a reader can tell whether it was the bottleneck.

Baselines (bench/baselines.py): (a) a bare aiohttp handler returning constant TwiML of
the same size; (c) (a) plus one pipelined redis-py round trip; (d) (c) plus one asyncpg
single-row INSERT commit. Ours: `ivr serve`, driven like Twilio (signed requests,
following the TwiML): menu steps alone, committing confirms alone, and whole calls.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from storage.embedded import embedded_postgres, embedded_redis  # noqa: E402

TOKEN = "bench-" + secrets.token_hex(8)
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def on_core_zero() -> None:
    os.sched_setaffinity(0, {0})


async def wait_ready(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            with contextlib.suppress(aiohttp.ClientError):
                async with http.post(url, data={}) as resp:
                    if resp.status < 500:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} never answered")


@contextlib.asynccontextmanager
async def server(args: list[str], env: dict[str, str], probe: str):
    proc = subprocess.Popen(
        args, env=env, preexec_fn=on_core_zero, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        await wait_ready(probe)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def drive(scenario: str, base_url: str, concurrency: int, seconds: float, pid: int) -> dict:
    before = cpu_of(pid)
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "drive.py"), scenario, base_url, TOKEN, str(concurrency), str(seconds)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the driver failed on {scenario}:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout)
    figures["server_cpu_ms_per_req"] = (cpu_of(pid) - before) * 1000 / max(figures["count"], 1)
    return figures


def row(name: str, f: dict) -> str:
    return (
        f"{name:<34} {f['per_s']:>8.0f}/s  p50 {f['p50_ms']:6.2f}  p90 {f['p90_ms']:6.2f}  p99 {f['p99_ms']:7.2f}  "
        f"max {f['max_ms']:7.1f} ms  server CPU {f['server_cpu_ms_per_req']:.2f} ms/req  "
        f"driver CPU {f['driver_cpu_s'] / f['wall_s'] * 100:3.0f}%  errors {f['errors']}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--dsn")
    parser.add_argument("--redis")
    opts = parser.parse_args()
    with contextlib.ExitStack() as stack:
        data = Path(tempfile.mkdtemp(prefix="ivr-bench-"))
        server_dsn = opts.dsn or stack.enter_context(embedded_postgres(data))
        redis_url = opts.redis or stack.enter_context(embedded_redis(data))
        name = "ivr_bench_" + secrets.token_hex(4)
        admin = await asyncpg.connect(server_dsn)
        await admin.execute(f'CREATE DATABASE "{name}"')
        dsn = urlunsplit(urlsplit(server_dsn)._replace(path="/" + name))
        try:
            await run_all(opts, dsn, redis_url)
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            await admin.close()


async def run_all(opts: argparse.Namespace, dsn: str, redis_url: str) -> None:
    results: dict[str, dict] = {}
    env = dict(os.environ)
    for kind, extra in (("a", []), ("c", [redis_url]), ("d", [redis_url, dsn])):
        port = 18100 + ord(kind)
        url = f"http://127.0.0.1:{port}"
        async with server(
            [sys.executable, str(ROOT / "bench" / "baselines.py"), kind, str(port), *extra], env, url + "/x"
        ) as proc:
            results[f"baseline ({kind})"] = drive("constant", url, opts.concurrency, opts.seconds, proc.pid)
    port = 18200
    url = f"http://127.0.0.1:{port}"
    ours_env = env | {
        "DATABASE_URL": dsn,
        "REDIS_URL": redis_url,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "PUBLIC_BASE_URL": url,
        "LOG_LEVEL": "WARNING",
        "IVR_DATA_DIR": tempfile.mkdtemp(prefix="ivr-bench-data-"),
    }
    async with server(
        [sys.executable, "-m", "ivr", "serve", "--port", str(port)], ours_env, url + "/twilio/status"
    ) as proc:
        for scenario in ("menu", "commit", "calls"):
            results[f"ours: {scenario}"] = drive(scenario, url, opts.concurrency, opts.seconds, proc.pid)
        redis = Redis.from_url(redis_url)
        keys = [k async for k in redis.scan_iter("ivr:call:*", count=1000)]
        sizes = [await redis.memory_usage(k) or 0 for k in keys[:200]]
        await redis.aclose()
    print(f"\nconcurrency {opts.concurrency}, {opts.seconds:.0f} s per scenario, server on core 0, driver on core 1\n")
    for name, figures in results.items():
        print(row(name, figures))
    print()
    print(f"menu step / baseline (c):  {results['ours: menu']['per_s'] / results['baseline (c)']['per_s']:.2f}x")
    print(f"commit / baseline (d):     {results['ours: commit']['per_s'] / results['baseline (d)']['per_s']:.2f}x")
    print(f"whole calls:               {results['ours: calls']['per_s']:.1f} calls/s (5 webhooks each)")
    if sizes:
        print(
            f"Redis per live call:       {sum(sizes) / len(sizes):.0f} bytes on average, "
            f"{max(sizes)} max ({len(sizes)} sessions)"
        )


if __name__ == "__main__":
    asyncio.run(main())
