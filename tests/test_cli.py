"""The ``ivr`` command as an operator and a compliance reviewer use it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from click.testing import CliRunner

from flows.loader import builtin_flows
from ivr.cli import main
from tests.conftest import AUTH_TOKEN
from tests.helpers import spawn_ivr

FLOW = builtin_flows()["consent-line"]
DEFINITION = Path(__file__).parents[1] / "flows" / "definitions" / "consent_line.toml"


def test_flows_show_prints_every_prompt_and_key_with_the_version() -> None:
    result = CliRunner().invoke(main, ["flows", "show", "consent-line"], env={"IVR_FLOWS_DIR": ""})

    assert result.exit_code == 0, result.output
    assert f"version {FLOW.version}" in result.output
    texts = [p.texts["en"] for p in FLOW.messages.values()]
    texts += [step.say.texts["en"] for step in FLOW.steps.values()]
    for text in texts:
        assert text in result.output
    assert "key 1 -> cpni_notice  (purpose=cpni)" in result.output
    assert "12# -> for_number  (purpose=cpni, action=revoke)" in result.output
    assert "plays whole, before any key is heard; kept as evidence (notice 'cpni')" in result.output


def test_flows_check_passes_the_shipped_flows() -> None:
    result = CliRunner().invoke(main, ["flows", "check"], env={"IVR_FLOWS_DIR": ""})

    assert result.exit_code == 0, result.output
    assert f"ok  consent-line  {FLOW.version}" in result.output


def test_flows_check_names_every_problem_of_a_broken_definition(tmp_path: Path) -> None:
    broken = DEFINITION.read_text().replace('yes = "decide"', 'yes = "decid"')
    (tmp_path / "consent_line.toml").write_text(broken)
    result = CliRunner().invoke(main, ["flows", "check"], env={"IVR_FLOWS_DIR": str(tmp_path)})

    assert result.exit_code == 1
    assert "step 'confirm' goes to unknown step 'decid'" in result.output
    assert "step 'decide' is unreachable" in result.output


async def test_simulate_runs_a_scripted_call_and_prints_the_transcript(service, db) -> None:
    env = os.environ | {"TWILIO_AUTH_TOKEN": AUTH_TOKEN, "IVR_FLOWS_DIR": ""}
    proc = await spawn_ivr(
        "simulate", "--url", service.base_url, "--from", "+14155550142", "--script", "1,2,1", env=env
    )
    output, _ = await asyncio.wait_for(proc.communicate(), 30)
    transcript = output.decode()

    assert proc.returncode == 0, transcript
    assert "IVR: " + FLOW.steps["main_menu"].say.text("en") in transcript
    assert "YOU: 2" in transcript
    assert "Your choice has been recorded: you chose to restrict" in transcript
    assert "[the IVR hung up]" in transcript
    rows = await db.fetch("SELECT action, channel FROM consent_events WHERE caller_number = '+14155550142'")
    assert [tuple(r) for r in rows][-1] == ("revoke", "keypad")
