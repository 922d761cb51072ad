"""Recordings sealed at rest (issue 16, finding 14): what is stored is not the audio,
playback is exactly the audio, a wrong key fails clearly, rotation keeps old recordings
readable, and the directory store's files are 0600 in a 0700 directory.

Tests that set their own RECORDING_KEY use a database of their own: recordings sealed
with a key no other test holds would otherwise read as unreadable to every later
``ivr verify``.
"""

from __future__ import annotations

import asyncio
import base64
import io
import secrets
import stat
import zipfile
from pathlib import Path

import pytest
from aiohttp.test_utils import unused_port
from click.testing import CliRunner

from ivr.access.passwords import hash_secret
from ivr.cli import main
from ivr.evidence.recording_keys import load_recording_keys
from ivr.settings import ConfigError, Settings
from storage.customers import Customer
from storage.recordings import DirectoryStore, PostgresStore
from storage.sealed_media import RecordingKeys, SealBroken, UnknownRecordingKey, key_id_of, seal, unseal
from tests import test_recording_fetch as fetch_tests
from tests.conftest import AUTH_TOKEN, CUSTOMER_PIN, Service, running_service
from tests.fake_twilio import FakeTwilio, new_caller
from tests.helpers import store_customer, token_for
from tests.test_recording_fetch import FAST, record_a_statement, wait_for_status
from tests.test_staff_pages import signed_in

media_server = fetch_tests.media_server  # the fixture, for these tests too
SID = "RE" + "0" * 32


def new_key() -> tuple[bytes, str]:
    key = secrets.token_bytes(32)
    return key, base64.b64encode(key).decode()


async def a_kept_recording(service: Service, http) -> str:
    customer = Customer(str(secrets.randbelow(10**9) + 10**9), "Ada", hash_secret(CUSTOMER_PIN), (new_caller(),))
    await store_customer(service, customer)
    sid = await record_a_statement(FakeTwilio(http, service.base_url, AUTH_TOKEN), customer)
    async with service.pool.acquire() as conn:
        await wait_for_status(conn, sid, "fetched")
    return sid


async def played(service: Service, http, sid: str) -> tuple[int, bytes]:
    staff = await token_for(service, "staff", "listener")
    url = f"{service.base_url}/api/recordings/{sid}/media"
    async with http.get(url, headers={"Authorization": f"Bearer {staff}"}) as resp:
        return resp.status, await resp.read()


async def blob_of(service: Service, sid: str):
    async with service.pool.acquire() as conn:
        return await conn.fetchrow("SELECT media, key_id FROM recording_blobs WHERE recording_sid = $1", sid)


def ivr_verify(own_storage, **env: str):
    run = CliRunner().invoke
    return asyncio.to_thread(run, main, ["verify"], env={"DATABASE_URL": own_storage.database_url, **env})


async def test_a_blob_in_postgres_is_sealed_and_plays_back_exactly(own_storage, media_server, http, tmp_path) -> None:
    key, encoded = new_key()
    config = FAST | {"TWILIO_API_BASE_URL": media_server.url, "RECORDING_KEY": encoded, "IVR_DATA_DIR": str(tmp_path)}
    async with running_service(own_storage, unused_port(), **config) as service:
        sid = await a_kept_recording(service, http)
        blob = await blob_of(service, sid)
        status, audio = await played(service, http, sid)

    media = media_server.bytes_for(sid)
    assert (status, audio) == (200, media)
    assert blob["key_id"] == key_id_of(key)
    stored = bytes(blob["media"])
    assert stored != media and media[:16] not in stored and media[-16:] not in stored
    checked = await ivr_verify(own_storage, RECORDING_KEY=encoded, IVR_DATA_DIR=str(tmp_path))
    assert checked.exit_code == 0 and "1 recording(s) match their chained SHA-256" in checked.output


async def test_the_directory_store_keeps_sealed_files_0600_in_a_0700_directory(
    own_storage,
    media_server,
    http,
    tmp_path,
) -> None:
    config = FAST | {"TWILIO_API_BASE_URL": media_server.url, "RECORDING_STORE": "directory"}
    async with running_service(own_storage, unused_port(), **config, IVR_DATA_DIR=str(tmp_path)) as service:
        sid = await a_kept_recording(service, http)
        status, audio = await played(service, http, sid)

    media, kept = media_server.bytes_for(sid), tmp_path / "recordings" / f"{sid}.sealed"
    assert (status, audio) == (200, media)
    assert media[:16] not in kept.read_bytes() and media[-16:] not in kept.read_bytes()
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(kept.parent.stat().st_mode) == 0o700
    key_file = tmp_path / "recording-keys" / "current.key"  # generated: none was configured
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert not list(kept.parent.glob("*.partial"))


async def test_a_wrong_master_key_fails_clearly_and_nothing_is_served(
    own_storage,
    media_server,
    http,
    tmp_path,
) -> None:
    right, right_encoded = new_key()
    _, wrong_encoded = new_key()
    config = FAST | {"TWILIO_API_BASE_URL": media_server.url, "IVR_DATA_DIR": str(tmp_path)}
    async with running_service(own_storage, unused_port(), **config, RECORDING_KEY=right_encoded) as service:
        sid = await a_kept_recording(service, http)
        call_sid = await service.pool.fetchval("SELECT call_sid FROM recordings WHERE recording_sid = $1", sid)

    async with running_service(own_storage, unused_port(), **config, RECORDING_KEY=wrong_encoded) as service:
        status, body = await played(service, http, sid)
        browser = await signed_in(service)
        try:
            async with browser.get(f"{service.base_url}/staff/recordings/{sid}") as resp:
                page_status, page = resp.status, await resp.text()
            async with browser.get(f"{service.base_url}/staff/calls/{call_sid}/evidence.zip") as resp:
                bundle = zipfile.ZipFile(io.BytesIO(await resp.read()))
        finally:
            await browser.close()

    media = media_server.bytes_for(sid)
    assert status == 503 and media[:16] not in body  # a configuration problem, as a Twilio one is
    assert f"sealed with recording key {key_id_of(right)}, which this service does not hold" in body.decode()
    assert page_status == 503 and "cannot be played" in page
    assert f"recordings/{sid}.UNREADABLE.txt" in bundle.namelist()
    assert f"recordings/{sid}.wav" not in bundle.namelist()
    checked = await ivr_verify(own_storage, RECORDING_KEY=wrong_encoded, IVR_DATA_DIR=str(tmp_path))
    assert checked.exit_code == 1 and "unreadable: recording_media id" in checked.output
    assert key_id_of(right) in checked.output


async def test_a_rotated_key_still_reads_old_recordings_and_new_ones_use_the_new_key(
    own_storage,
    media_server,
    http,
    tmp_path,
) -> None:
    old, old_encoded = new_key()
    new, new_encoded = new_key()
    config = FAST | {"TWILIO_API_BASE_URL": media_server.url, "IVR_DATA_DIR": str(tmp_path)}
    async with running_service(own_storage, unused_port(), **config, RECORDING_KEY=old_encoded) as service:
        before = await a_kept_recording(service, http)

    rotated = config | {"RECORDING_KEY": new_encoded, "RECORDING_OLD_KEYS": old_encoded}
    async with running_service(own_storage, unused_port(), **rotated) as service:
        after = await a_kept_recording(service, http)
        old_played, new_played = await played(service, http, before), await played(service, http, after)
        old_blob, new_blob = await blob_of(service, before), await blob_of(service, after)

    assert old_played == (200, media_server.bytes_for(before))
    assert new_played == (200, media_server.bytes_for(after))
    assert (old_blob["key_id"], new_blob["key_id"]) == (key_id_of(old), key_id_of(new))
    checked = await ivr_verify(own_storage, IVR_DATA_DIR=str(tmp_path), RECORDING_KEY=new_encoded,
                               RECORDING_OLD_KEYS=old_encoded)  # fmt: skip
    assert checked.exit_code == 0 and "2 recording(s) match their chained SHA-256" in checked.output


def test_older_keys_beside_the_key_file_still_open_what_they_sealed(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    old, new = secrets.token_bytes(32), secrets.token_bytes(32)
    (keys_dir / "2025-01.key").write_text(base64.b64encode(old).decode() + "\n")
    (keys_dir / "current.key").write_text(base64.b64encode(new).decode() + "\n")
    settings = Settings.from_env({"RECORDING_KEY_FILE": str(keys_dir / "current.key")}, need_twilio=False)

    keys = load_recording_keys(settings)

    assert keys.current_id == key_id_of(new)
    assert unseal(keys, SID, seal(RecordingKeys(old), SID, b"RIFF old")) == b"RIFF old"
    assert seal(keys, SID, b"RIFF new")[9 : 9 + len(key_id_of(new))] == key_id_of(new).encode()


def test_a_key_generated_under_the_data_dir_is_kept_and_reused(tmp_path: Path) -> None:
    settings = Settings.from_env({"IVR_DATA_DIR": str(tmp_path)}, need_twilio=False)
    first, again = load_recording_keys(settings), load_recording_keys(settings)
    assert first.current_id == again.current_id


def test_sealed_bytes_are_bound_to_their_recording_and_to_every_bit() -> None:
    keys = RecordingKeys(secrets.token_bytes(32))
    sealed = seal(keys, SID, b"RIFF" + secrets.token_bytes(100))
    other = "RE" + "1" * 32
    with pytest.raises(SealBroken, match="another recording's"):
        unseal(keys, other, sealed)  # copied onto another recording
    for at in (len(sealed) - 1, 30, 60):
        flipped = bytearray(sealed)
        flipped[at] ^= 1
        with pytest.raises(SealBroken):
            unseal(keys, SID, bytes(flipped))
    with pytest.raises(UnknownRecordingKey, match=keys.current_id):
        unseal(RecordingKeys(secrets.token_bytes(32)), SID, sealed)
    assert keys.current.hex() not in repr(keys)


async def test_recordings_kept_in_clear_before_sealing_are_still_read(service: Service, tmp_path: Path) -> None:
    keys = RecordingKeys(secrets.token_bytes(32))
    sid, clear = "RE" + secrets.token_hex(16), b"RIFF" + secrets.token_bytes(64)
    async with service.pool.acquire() as conn:
        await conn.execute("INSERT INTO recording_blobs (recording_sid, media) VALUES ($1, $2)", sid, clear)
        assert await PostgresStore(keys).get(conn, sid) == clear
        directory = DirectoryStore(tmp_path / "recordings", keys)
        directory.secure()
        (tmp_path / "recordings" / f"{sid}.wav").write_bytes(clear)
        assert await directory.get(conn, sid) == clear


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"RECORDING_KEY": "not base64!"}, "config error: RECORDING_KEY: must be base64 (of a 32-byte AES-256 key)"),
        ({"RECORDING_KEY": base64.b64encode(b"short").decode()}, "config error: RECORDING_KEY: must be the base64"),
        (
            {"RECORDING_OLD_KEYS": base64.b64encode(bytes(32)).decode() + ",xx"},
            "config error: RECORDING_OLD_KEYS: key 2",
        ),
        ({"RECORDING_KEY_FILE": "/nonexistent/current.key"}, "config error: RECORDING_KEY_FILE: /nonexistent"),
        (
            {"RECORDING_KEY": base64.b64encode(bytes(32)).decode(), "RECORDING_KEY_FILE": "{key_file}"},
            "config error: RECORDING_KEY_FILE: set RECORDING_KEY or RECORDING_KEY_FILE, not both",
        ),
    ],
)
def test_bad_recording_keys_fail_start_up_naming_the_variable(tmp_path: Path, env: dict, problem: str) -> None:
    key_file = tmp_path / "current.key"
    key_file.write_text(base64.b64encode(bytes(32)).decode())
    env = {name: value.format(key_file=key_file) for name, value in env.items()}
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env, need_twilio=False)
    assert len(raised.value.problems) == 1 and raised.value.problems[0].startswith(problem)
