"""Webhook speed, ours against baselines, in one run on this machine (loopback only).

    python bench/webhooks.py [--seconds 6] [--concurrency 50] [--live-calls 200]
      [--dsn postgresql://postgres@127.0.0.1/postgres] [--redis redis://127.0.0.1:6379/0]

Without --dsn/--redis it starts the embedded Postgres and Redis. One-process runs pin
the server to core 0 and the load generator to core 1; the load generator's own CPU is
printed so a reader can tell whether it was the bottleneck.

Baselines (bench/baselines.py, driven by wrk when it is installed: `apt install wrk`):
(a) a bare aiohttp handler returning constant TwiML of the same size; (c) (a) plus one
pipelined redis-py round trip; (d) (c) plus one asyncpg single-row INSERT commit.
Ours (`ivr serve`, driven like Twilio by bench/drive.py): menu steps alone and
committing confirms alone on calls dialed beforehand; 200 callers on the line at once,
pausing like people, for latency; whole calls per second; the same with 2 processes;
and the menu steps again without metrics and without logs, for what those cost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import secrets
import shutil
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

from bench.drive import server_cpu as cpu_of  # noqa: E402
from storage.embedded import embedded_postgres, embedded_redis  # noqa: E402
from storage.keys import CALL_SESSION_TTL_S  # noqa: E402

TOKEN = "bench-" + secrets.token_hex(8)
FORM = (
    "AccountSid=AC00000000000000000000000000000000&CallSid=CA00000000000000000000000000000000"
    "&Digits=1&From=%2B14155550100&To=%2B18005550199"
)
WRK_SCRIPT = (
    f'wrk.method = "POST"\nwrk.body = "{FORM}"\nwrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
)


def children_of(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


async def wait_ready(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            with contextlib.suppress(aiohttp.ClientError):
                async with http.post(url, data={}) as resp:
                    if resp.status < 500:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} never answered")


@contextlib.asynccontextmanager
async def server(args: list[str], env: dict[str, str], probe: str, core: int | None = 0):
    pin = (lambda: os.sched_setaffinity(0, {core})) if core is not None else None
    proc = subprocess.Popen(args, env=env, preexec_fn=pin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await wait_ready(probe)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def drive(scenario: str, base_url: str, concurrency: int, seconds: float, pids: list[int], core: int | None = 1):
    env = dict(os.environ) | ({"DRIVER_CORE": str(core)} if core is not None else {})
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "drive.py"), scenario, base_url, TOKEN, str(concurrency), str(seconds)]
        + [",".join(map(str, pids))],
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the driver failed on {scenario}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def wrk(url: str, concurrency: int, seconds: float, pid: int) -> dict:
    """wrk on core 1 against a baseline on core 0: throughput, latency and both sides' CPU."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    before, server_before = resource.getrusage(resource.RUSAGE_CHILDREN), cpu_of([pid])
    done = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--latency"]
        + ["-s", script.name, url],
        capture_output=True,
        text=True,
        check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = done.stdout
    count = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    per_s = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def ms(text: str) -> float:
        value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    percentiles = dict(re.findall(r"^\s+(\d+)%\s+(\S+)", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "count": count,
        "wall_s": seconds,
        "per_s": per_s,
        "p50_ms": ms(percentiles["50"]),
        "p90_ms": ms(percentiles["90"]),
        "p99_ms": ms(percentiles["99"]),
        "max_ms": ms(re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
        "errors": int(errors.group(1)) if errors else 0,
        "driver_cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "server_cpu_ms_per_req": (cpu_of([pid]) - server_before) * 1000 / max(count, 1),
        "driver": "wrk",
    }


def row(name: str, f: dict) -> str:
    driver = f"{f.get('driver', 'py')} {f['driver_cpu_s'] / f['wall_s'] * 100:3.0f}%"
    return (
        f"{name:<40} {f['per_s']:>7.0f}/s  p50 {f['p50_ms']:6.2f}  p90 {f['p90_ms']:6.2f}  p99 {f['p99_ms']:7.2f}  "
        f"max {f['max_ms']:7.1f} ms  server {f['server_cpu_ms_per_req']:.3f} ms/req  driver {driver}  "
        f"errors {f['errors']}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--live-calls", type=int, default=200)
    parser.add_argument("--dsn")
    parser.add_argument("--redis")
    opts = parser.parse_args()
    with contextlib.ExitStack() as stack:
        data = Path(tempfile.mkdtemp(prefix="ivr-bench-"))
        server_dsn = opts.dsn or stack.enter_context(embedded_postgres(data))
        redis_url = opts.redis or stack.enter_context(embedded_redis(data))
        admin = await asyncpg.connect(server_dsn)
        try:
            await run_all(opts, admin, server_dsn, redis_url)
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def fresh_database(admin: asyncpg.Connection, server_dsn: str):
    name = "ivr_bench_" + secrets.token_hex(4)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(server_dsn)._replace(path="/" + name))
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


async def baselines(opts: argparse.Namespace, dsn: str, redis_url: str, results: dict) -> None:
    for kind, extra in (("a", []), ("c", [redis_url]), ("d", [redis_url, dsn])):
        port = 18100 + ord(kind)
        url = f"http://127.0.0.1:{port}"
        args = [sys.executable, str(ROOT / "bench" / "baselines.py"), kind, str(port), *extra]
        async with server(args, dict(os.environ), url + "/x") as proc:
            if shutil.which("wrk"):
                results[f"baseline ({kind})"] = wrk(url + "/twilio/answer", opts.concurrency, opts.seconds, proc.pid)
            else:
                figures = drive("constant", url, opts.concurrency, opts.seconds, [proc.pid])
                results[f"baseline ({kind})"] = figures["constant"]


VARIANTS = {
    "as deployed": {},
    "without metrics": {"METRICS_ENABLED": "false"},
    "without logs": {"LOG_LEVEL": "WARNING"},
}
OVERHEAD_ROUNDS = 2


def ours_env(dsn: str, redis_url: str, url: str, **extra: str) -> dict[str, str]:
    return (
        dict(os.environ)
        | {
            "DATABASE_URL": dsn,
            "REDIS_URL": redis_url,
            "TWILIO_AUTH_TOKEN": TOKEN,
            "PUBLIC_BASE_URL": url,
            "LOG_LEVEL": "INFO",  # as deployed: an access line and the desk's own lines, JSON
            "IVR_DATA_DIR": tempfile.mkdtemp(prefix="ivr-bench-data-"),
        }
        | extra
    )


async def ours(opts: argparse.Namespace, admin, server_dsn: str, redis_url: str, results: dict) -> dict:
    url = "http://127.0.0.1:18200"
    serve = [sys.executable, "-m", "ivr", "serve", "--port", "18200"]
    census: dict = {}
    async with fresh_database(admin, server_dsn) as dsn:
        async with server(serve, ours_env(dsn, redis_url, url), url + "/twilio/status") as proc:
            # The latency scenario twice: on a fresh service, and again after the closed loops.
            live, census = await live_with_census(url, opts, proc.pid, redis_url)
            for kind in ("dial", "menu", "commit"):
                results[f"ours, {opts.live_calls} callers on the line: {kind}"] = live[kind]
            steps = drive("steps", url, opts.concurrency, opts.seconds, [proc.pid])
            results["ours: menu steps"], results["ours: committing confirms"] = steps["menu"], steps["commit"]
            live, _ = await live_with_census(url, opts, proc.pid, redis_url)
            for kind in ("menu", "commit"):
                results[f"ours, {opts.live_calls} callers on the line, again: {kind}"] = live[kind]
            results["ours: whole calls"] = drive("calls", url, opts.concurrency, opts.seconds, [proc.pid])["calls"]
    return census


async def overheads(opts: argparse.Namespace, admin, server_dsn: str, redis_url: str, results: dict) -> None:
    """Menu steps with everything on, without metrics, without logs: interleaved rounds, each on a
    fresh database, so that drift over the run (a warmer disk, a fuller Redis) hits all alike."""
    url = "http://127.0.0.1:18250"
    serve = [sys.executable, "-m", "ivr", "serve", "--port", "18250"]
    rounds: dict[str, list[dict]] = {label: [] for label in VARIANTS}
    for _ in range(OVERHEAD_ROUNDS):
        for label, extra in VARIANTS.items():
            async with fresh_database(admin, server_dsn) as dsn:
                async with server(serve, ours_env(dsn, redis_url, url, **extra), url + "/twilio/status") as proc:
                    rounds[label].append(drive("steps", url, opts.concurrency, opts.seconds, [proc.pid])["menu"])
    for label, runs in rounds.items():
        best = max(runs, key=lambda f: f["per_s"])
        results[f"ours: menu steps {label} (best of {len(runs)})"] = best


async def live_with_census(url: str, opts: argparse.Namespace, pid: int, redis_url: str) -> tuple[dict, dict]:
    """The live scenario, with Redis looked at halfway through: what one call in flight costs."""
    args = [str(ROOT / "bench" / "drive.py"), "live", url, TOKEN, str(opts.live_calls), str(opts.seconds * 3), str(pid)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *args, stdout=asyncio.subprocess.PIPE, env=dict(os.environ) | {"DRIVER_CORE": "1"}
    )
    await asyncio.sleep(opts.seconds * 1.5)
    redis = Redis.from_url(redis_url)
    try:
        census = {}
        for kind in ("ivr:call:", "ivr:lock:"):
            keys = [k async for k in redis.scan_iter(kind + "*", count=1000)]
            # Only sessions moved in the last two minutes: an ended call's lingers a minute or
            # two (for a duplicated status callback), and Redis may hold older runs' calls.
            live = [k for k in keys if kind == "ivr:lock:" or await redis.ttl(k) > CALL_SESSION_TTL_S - 120]
            census[kind] = [await redis.memory_usage(k) or 0 for k in live]
    finally:
        await redis.aclose()
    out, _ = await proc.communicate()
    return json.loads(out), census


async def processes(opts: argparse.Namespace, admin, server_dsn: str, redis_url: str, results: dict) -> None:
    """Menu steps and commits on one process and on two (SO_REUSEPORT), nothing pinned, the same driver."""
    url = "http://127.0.0.1:18300"
    async with fresh_database(admin, server_dsn) as dsn:
        for workers in (1, 2):
            serve = [sys.executable, "-m", "ivr", "serve", "--port", "18300", "--workers", str(workers)]
            async with server(serve, ours_env(dsn, redis_url, url), url + "/twilio/status", core=None) as proc:
                pids = [proc.pid] if workers == 1 else children_of(proc.pid)
                figures = drive("steps", url, opts.concurrency, opts.seconds, pids, core=None)
                label = f"{workers} process{'es' if workers > 1 else ''}, unpinned"
                results[f"ours: menu steps, {label}"] = figures["menu"]
                results[f"ours: committing confirms, {label}"] = figures["commit"]


async def run_all(opts: argparse.Namespace, admin, server_dsn: str, redis_url: str) -> None:
    results: dict[str, dict] = {}
    async with fresh_database(admin, server_dsn) as dsn:
        await baselines(opts, dsn, redis_url, results)
    census = await ours(opts, admin, server_dsn, redis_url, results)
    await processes(opts, admin, server_dsn, redis_url, results)
    await overheads(opts, admin, server_dsn, redis_url, results)
    report(opts, results, census)


def report(opts: argparse.Namespace, results: dict[str, dict], census: dict) -> None:
    print(f"\nclosed loops at concurrency {opts.concurrency}, {opts.seconds:.0f} s each; one-process runs: server on")
    print(f"core 0, driver on core 1; {opts.live_calls} callers on the line for {opts.seconds * 3:.0f} s\n")
    for name, figures in results.items():
        print(row(name, figures))
    r = {k: v["per_s"] for k, v in results.items()}
    print()
    print(f"menu step / baseline (c):            {r['ours: menu steps'] / r['baseline (c)']:.2f}x")
    print(f"committing confirm / baseline (d):   {r['ours: committing confirms'] / r['baseline (d)']:.2f}x")
    for kind in ("menu steps", "committing confirms"):
        two, one = r[f"ours: {kind}, 2 processes, unpinned"], r[f"ours: {kind}, 1 process, unpinned"]
        print(f"2 processes / 1 process, {kind + ':':<20} {two / one:.2f}x")
    best = f"(best of {OVERHEAD_ROUNDS})"
    full = r[f"ours: menu steps as deployed {best}"]
    for label in ("metrics", "logs"):
        without = r[f"ours: menu steps without {label} {best}"]
        print(f"{label + ' cost (menu steps):':<37}{(1 - full / without) * 100:+.1f}% of throughput")
    sessions, locks = census.get("ivr:call:", []), census.get("ivr:lock:", [])
    if sessions:
        per_call = (sum(sessions) + sum(locks)) / len(sessions)
        print(
            f"Redis per live call:                 {per_call:.0f} bytes on average (all its keys), session max "
            f"{max(sessions)} ({len(sessions)} sessions, {len(locks)} locks held at that moment)"
        )


if __name__ == "__main__":
    asyncio.run(main())
