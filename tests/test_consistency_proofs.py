"""An auditor who kept an old checkpoint learns, without the database, that a later one
extends it: `ivr prove consistency` and the bundle's verify.py --consistency."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

from ivr.evidence.bundle_proofs import VERIFIER
from tests.helpers import make_calls, run_verify_py
from tests.test_checkpoints import cli, origin_of


async def test_a_later_checkpoint_is_proved_to_extend_a_kept_one(own_storage, http, tmp_path) -> None:
    await make_calls(own_storage, http, count=1)  # signed at shutdown
    folder = Path("var-tests") / "checkpoints" / await origin_of(own_storage)
    [first] = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    await make_calls(own_storage, http, count=2)
    key = (await asyncio.to_thread(cli, own_storage, "checkpoint", "--public-key")).output.strip()

    made = await asyncio.to_thread(
        cli, own_storage, "prove", "consistency", "--from", str(first["tree_size"]), "-o", str(tmp_path / "c.json")
    )
    assert made.exit_code == 0, made.output
    statement = json.loads((tmp_path / "c.json").read_text())
    assert statement["old"]["root_hash"] == first["root_hash"] and statement["new"]["tree_size"] > first["tree_size"]
    shutil.copy(VERIFIER, tmp_path / "verify.py")

    code, out = await run_verify_py(tmp_path, "--consistency", "c.json", "--public-key", key)
    assert code == 0, out
    assert out.startswith(f"verified: ledger {first['origin']}'s {statement['new']['tree_size']:,} entries")

    bent = statement | {"proof": [statement["proof"][0][::-1], *statement["proof"][1:]]}
    (tmp_path / "bent.json").write_text(json.dumps(bent))
    code, out = await run_verify_py(tmp_path, "--consistency", "bent.json", "--public-key", key)
    assert code == 1 and "does not begin with the one at" in out

    forged = statement | {"old": statement["old"] | {"root_hash": "0" * 64}}
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    code, out = await run_verify_py(tmp_path, "--consistency", "forged.json", "--public-key", key)
    assert code == 1 and "old checkpoint" in out and "signature does not verify" in out


def test_a_size_no_checkpoint_was_kept_of_is_refused(own_storage) -> None:
    result = cli(own_storage, "prove", "consistency", "--from", "999999")
    assert result.exit_code == 1 and "no kept checkpoints of 999999" in result.output
