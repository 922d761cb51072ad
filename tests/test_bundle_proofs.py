"""A call's bundle proves itself to anyone with Python alone: rows, leaves, root, signature,
time-stamp and media (issue 15, attack 5); every byte of it matters."""

from __future__ import annotations

import io
import json
import secrets
import shutil
import zipfile
from pathlib import Path

import pytest
from aiohttp.test_utils import unused_port

from ivr import appkeys
from ivr.access.passwords import hash_secret
from storage.customers import Customer
from tests.conftest import AUTH_TOKEN, CUSTOMER_PIN, running_service
from tests.fake_tsa import local_tsa, openssl_available
from tests.fake_twilio import FakeTwilio, new_caller
from tests.helpers import run_verify_py, store_customer, token_for
from tests.test_recording_fetch import FAST, media_server, record_a_statement, wait_for_status  # noqa: F401

pytestmark = pytest.mark.skipif(not openssl_available(), reason="openssl is needed for the local TSA")


@pytest.fixture
async def bundle(own_storage, media_server, http, tmp_path) -> tuple[Path, bytes, str]:  # noqa: F811
    """A recorded testimonial's bundle, time-stamped by a local TSA: (unzipped, zip, public key)."""
    async with (
        local_tsa() as tsa,
        running_service(
            own_storage, unused_port(), TWILIO_API_BASE_URL=media_server.url, TSA_URL=tsa.url, **FAST
        ) as service,
    ):
        customer = Customer(str(secrets.randbelow(10**9) + 10**9), "Ada", hash_secret(CUSTOMER_PIN), (new_caller(),))
        await store_customer(service, customer)
        sid = await record_a_statement(FakeTwilio(http, service.base_url, AUTH_TOKEN), customer)
        async with service.pool.acquire() as conn:
            await wait_for_status(conn, sid, "fetched")
            call_sid = await conn.fetchval("SELECT call_sid FROM recordings WHERE recording_sid = $1", sid)
        staff = await token_for(service, "staff", "ines")
        url = f"{service.base_url}/api/calls/{call_sid}/evidence.zip"
        async with http.get(url, headers={"Authorization": f"Bearer {staff}"}) as resp:
            assert resp.status == 200
            body = await resp.read()
        public_key = service.app[appkeys.CHECKPOINT_SIGNER].public_key
    folder = tmp_path / "bundle"
    zipfile.ZipFile(io.BytesIO(body)).extractall(folder)
    return folder, body, public_key


async def test_the_bundle_verifies_offline_with_the_kept_key_unzipped_or_zipped(bundle, tmp_path) -> None:
    folder, body, public_key = bundle
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert {"proofs.json", "checkpoint.json", "checkpoint.tsr", "verify.py", "ledger-public-key.txt"} <= names
    proofs = json.loads((folder / "proofs.json").read_text())
    kinds = {e["kind"] for e in proofs["entries"]}
    assert {"calls", "keypresses", "consent_events", "recording_media", "flow_versions"} <= kinds
    assert all(e["proof"] for e in proofs["entries"])  # a tree of more than one leaf

    code, out = await run_verify_py(folder, "--public-key", public_key)
    assert code == 0, out
    assert out.startswith("verified: ") and out.count("\n") == 1
    assert f"{len(proofs['entries'])} records of call {proofs['call_sid']}" in out
    assert "as given" in out and "time-stamped by a TSA at" in out and "1 recording(s) match" in out

    zipped = tmp_path / "evidence.zip"
    zipped.write_bytes(body)
    code, out = await run_verify_py(folder, str(zipped))
    assert code == 0 and "from the bundle" in out, out


async def test_another_key_is_refused(bundle) -> None:
    folder, _, _ = bundle
    other = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="  # RFC 8032's first test key
    code, out = await run_verify_py(folder, "--public-key", other)
    assert code == 1
    assert "FAILED: checkpoint.json: signed by key" in out and "the signature does not verify" in out


async def test_one_flipped_byte_anywhere_in_any_file_fails(bundle, tmp_path) -> None:
    folder, _, public_key = bundle
    files = sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())
    assert len(files) >= 10
    survived = []
    for name in files:
        size = (folder / name).stat().st_size
        for at in sorted({0, size // 3, size // 2, size - 1}):
            copy = tmp_path / f"flip-{secrets.token_hex(3)}"
            shutil.copytree(folder, copy)
            data = bytearray((copy / name).read_bytes())
            data[at] ^= 0x01
            (copy / name).write_bytes(bytes(data))
            code, out = await run_verify_py(copy, "--public-key", public_key)
            if code == 0:
                survived.append(f"{name}@{at}: {out}")
            shutil.rmtree(copy)
    assert survived == []


async def test_a_record_left_out_of_the_proofs_is_caught_in_the_story(bundle) -> None:
    folder, _, public_key = bundle
    proofs = json.loads((folder / "proofs.json").read_text())
    proofs["entries"] = [e for e in proofs["entries"] if e["kind"] != "consent_events"]
    (folder / "proofs.json").write_text(json.dumps(proofs))
    code, out = await run_verify_py(folder, "--public-key", public_key)
    assert code == 1 and "evidence.json: entry #" in out and "is not shown as proven" in out
