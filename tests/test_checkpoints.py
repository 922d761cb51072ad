"""The ledger's Merkle tree and its signed checkpoints: the tail cannot be cut off unnoticed."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr.cli import main
from storage.merkle import EMPTY_ROOT, Frontier, leaf_hash, node_hash, root_of
from storage.postgres import connect
from tests.fake_tsa import local_tsa, openssl_available
from tests.helpers import make_calls

# RFC 6962 / RFC 9162 test vectors (certificate-transparency's reference tests): the
# roots of the trees over the first 1..8 of these leaf inputs.
CT_INPUTS = [b"", b"\x00", b"\x10", b" !", b"01", b"@ABC", b"PQRSTUVW", b"`abcdefghijklmno"]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_the_tree_hashes_as_rfc_9162_says() -> None:
    frontier = Frontier()
    assert frontier.root() == EMPTY_ROOT
    for data, expected in zip(CT_INPUTS, CT_ROOTS, strict=True):
        frontier.append(leaf_hash(data))
        assert frontier.root().hex() == expected
    assert leaf_hash(b"ab") != node_hash(b"a", b"b")  # a leaf never passes for a node


def test_the_frontier_gives_the_root_of_any_size_and_survives_storing() -> None:
    leaves = [leaf_hash(str(n).encode()) for n in range(70)]
    frontier = Frontier()
    for n, leaf in enumerate(leaves, start=1):
        frontier.append(leaf)
        assert frontier.root() == root_of(leaves[:n])
        assert len(frontier.subtrees) == bin(n).count("1")
        again = Frontier.from_hex(frontier.size, frontier.to_hex())
        assert again.root() == frontier.root()
    with pytest.raises(ValueError):
        Frontier.from_hex(5, frontier.to_hex())


def cli(storage, *args: str, **env: str):
    base = {"DATABASE_URL": storage.database_url, "IVR_DATA_DIR": "var-tests"}
    return CliRunner().invoke(main, list(args), env=base | env)


async def as_owner(storage, *statements: str) -> None:
    """What someone holding the service's database credentials could do (the issue's attack)."""
    owner = await connect(storage.database_url)
    try:
        async with owner.transaction():
            await owner.execute("SET LOCAL ivr.retention_run = 'on'")
            for statement in statements:
                await owner.execute(statement)
    finally:
        await owner.close()


async def origin_of(storage) -> str:
    conn = await connect(storage.database_url)
    try:
        return str(await conn.fetchval("SELECT origin::text FROM ledger_origin"))
    finally:
        await conn.close()


_DOOMED_ROWS = " OR ".join(
    f"(l.kind = '{table}' AND l.ref_id IN (SELECT id FROM {table} WHERE call_sid IN (SELECT call_sid FROM doomed)))"
    for table in ("calls", "keypresses", "consent_events", "call_endings")
)
# The last call's evidence and the ledger entries from its first one on: the tail, cut off.
CUT_THE_TAIL = (
    "CREATE TEMP TABLE doomed AS SELECT call_sid FROM calls ORDER BY started_at DESC LIMIT 1",
    f"CREATE TEMP TABLE cut AS SELECT min(l.seq) AS from_seq FROM ledger l WHERE {_DOOMED_ROWS}",
    "DELETE FROM ledger WHERE seq >= (SELECT from_seq FROM cut)",
    *(
        f"DELETE FROM {table} WHERE call_sid IN (SELECT call_sid FROM doomed)"
        for table in ("keypresses", "consent_events", "call_endings", "calls")
    ),
)


async def test_a_checkpoint_is_signed_kept_read_only_and_verified(own_storage, http) -> None:
    await make_calls(own_storage, http, count=2)  # the service signs one as it shuts down
    origin = await origin_of(own_storage)
    folder = Path("var-tests") / "checkpoints" / origin
    [made_at_shutdown] = sorted(folder.glob("*.json"))

    again = await asyncio.to_thread(cli, own_storage, "checkpoint")
    assert again.exit_code == 0 and "no checkpoint needed" in again.output
    assert not os.stat(made_at_shutdown).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    kept = json.loads(made_at_shutdown.read_text())
    entries = await _ledger_size(own_storage)
    assert (kept["origin"], kept["tree_size"]) == (origin, entries)

    verified = await asyncio.to_thread(cli, own_storage, "verify")
    assert verified.exit_code == 0, verified.output
    assert f"tree consistent with 1 signed checkpoint(s) of ledger {origin}" in verified.output


async def test_cutting_the_tail_off_is_caught_by_the_checkpoint_it_contradicts(own_storage, http) -> None:
    await make_calls(own_storage, http, count=2)
    entries = await _ledger_size(own_storage)

    await as_owner(own_storage, *CUT_THE_TAIL)
    left = await _ledger_size(own_storage)

    caught = await asyncio.to_thread(cli, own_storage, "verify")
    assert 0 < left < entries and caught.exit_code == 1
    assert "truncated: ledger: checkpoint " in caught.output
    assert f"covered {entries:,} entries; the ledger now has {left:,}" in caught.output


async def test_a_rewritten_tail_is_caught_as_a_fork(own_storage, http) -> None:
    await make_calls(own_storage, http, count=2)
    await as_owner(own_storage, *CUT_THE_TAIL)
    await make_calls(own_storage, http, count=1)  # the ledger grows past the checkpoint again, differently

    caught = await asyncio.to_thread(cli, own_storage, "verify")
    assert caught.exit_code == 1
    assert "forked" in caught.output and "now hash to" in caught.output


async def test_a_checkpoint_file_edited_or_signed_by_another_key_is_refused(own_storage, http) -> None:
    await make_calls(own_storage, http, count=1)
    [path] = sorted((Path("var-tests") / "checkpoints" / await origin_of(own_storage)).glob("*.json"))
    forged = json.loads(path.read_text()) | {"tree_size": 1}
    os.chmod(path, 0o644)
    path.write_text(json.dumps(forged))

    refused = await asyncio.to_thread(cli, own_storage, "verify")
    other_key = await asyncio.to_thread(cli, own_storage, "verify", "--public-key", "A" * 43 + "=")

    assert refused.exit_code == 1 and "signature does not verify" in refused.output
    assert other_key.exit_code == 1 and "signature does not verify" in other_key.output


async def _ledger_size(storage) -> int:
    conn = await connect(storage.database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM ledger"))
    finally:
        await conn.close()


@pytest.mark.skipif(not openssl_available(), reason="openssl is needed for the local TSA (apt-get install openssl)")
async def test_checkpoints_are_time_stamped_by_a_tsa_and_a_forged_token_is_caught(own_storage, http) -> None:
    async with local_tsa() as tsa:
        env = {"TSA_URL": tsa.url, "TSA_CA_FILE": str(tsa.ca_file)}
        await make_calls(own_storage, http, count=1)  # the shutdown checkpoint, without a TSA
        held = await asyncio.to_thread(cli, own_storage, "hold", "add", "--subject", "+12125550188", "--reason", "x")
        assert held.exit_code == 0, held.output  # the ledger grew: a chained hold event
        made = await asyncio.to_thread(cli, own_storage, "checkpoint", **env)
        assert made.exit_code == 0, made.output
        assert tsa.requests == 1
        folder = Path("var-tests") / "checkpoints" / await origin_of(own_storage)
        [token] = sorted(folder.glob("*.tsr"))
        assert token.with_suffix(".json").exists()

        verified = await asyncio.to_thread(cli, own_storage, "verify", **env)
        assert verified.exit_code == 0, verified.output

        other = sorted(folder.glob("*.json"))[0]  # the earlier checkpoint, given this token
        os.chmod(token, 0o644)
        forged_path = other.with_suffix(".tsr")
        forged_path.write_bytes(token.read_bytes())
        caught = await asyncio.to_thread(cli, own_storage, "verify", **env)
        assert caught.exit_code == 1 and "the time-stamp token is about other data" in caught.output
        forged_path.unlink()

        token.write_bytes(token.read_bytes()[:-3] + b"\x00\x00\x00")  # a byte of the TSA's signature changed
        caught = await asyncio.to_thread(cli, own_storage, "verify", **env)
        assert caught.exit_code == 1 and "time-stamp token" in caught.output
