"""A real RFC 3161 time-stamping authority on loopback: ``openssl ts -reply`` behind HTTP.

The far side of the wire for the checkpoint tests: its own root CA and a TSA certificate
with the timeStamping key usage, made with openssl in a temporary directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import unused_port

__all__ = ["LocalTsa", "local_tsa", "openssl_available"]

_CONFIG = """[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.crt
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""
_TSA_EXTENSIONS = (
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=critical,timeStamping\n"
)


def openssl_available() -> bool:
    return shutil.which("openssl") is not None


def _openssl(folder: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)


def _make_authority(folder: Path) -> None:
    (folder / "serial").write_text("01\n")
    (folder / "tsa.cnf").write_text(_CONFIG.format(dir=folder))
    (folder / "tsa.ext").write_text(_TSA_EXTENSIONS)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    _openssl(
        folder, "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=Test TSA Root",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    _openssl(folder, "req", *ec, "-keyout", "tsa.key", "-out", "tsa.csr", "-subj", "/CN=Test TSA")
    _openssl(
        folder, "x509", "-req", "-in", "tsa.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "tsa.crt", "-days", "2", "-extfile", "tsa.ext",
    )  # fmt: skip


@dataclass
class LocalTsa:
    url: str
    ca_file: Path
    requests: int = 0


@contextlib.asynccontextmanager
async def local_tsa() -> AsyncIterator[LocalTsa]:
    with tempfile.TemporaryDirectory(prefix="tsa-") as name:
        folder = Path(name)
        await asyncio.to_thread(_make_authority, folder)
        port = unused_port()
        tsa = LocalTsa(f"http://127.0.0.1:{port}/tsa", folder / "ca.crt")

        async def reply(request: web.Request) -> web.Response:
            tsa.requests += 1
            query = folder / f"q{tsa.requests}.tsq"
            query.write_bytes(await request.read())
            answer = folder / f"r{tsa.requests}.tsr"
            await asyncio.to_thread(
                _openssl, folder, "ts", "-reply", "-queryfile", query.name, "-config", "tsa.cnf",
                "-section", "tsa_config", "-out", answer.name,
            )  # fmt: skip
            return web.Response(body=answer.read_bytes(), content_type="application/timestamp-reply")

        app = web.Application()
        app.router.add_post("/tsa", reply)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            yield tsa
        finally:
            await runner.cleanup()
