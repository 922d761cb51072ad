"""Rendered answers are cached per instruction; the prompt number is still each call's own."""

from __future__ import annotations

from flows.model import Ask, Connect, End, Record
from ivr.voice.twiml import TwimlRenderer

BASE = "https://ivr.example.com"


def test_a_cached_answer_carries_each_prompts_own_number_and_matches_a_fresh_rendering() -> None:
    cached = TwimlRenderer(BASE, {"agents": "queue:agents"})
    instructions = [
        Ask(("Press 1 & say <yes>.",), "en-US", 3, 1, 6),
        Record(("After the beep, say it.",), "en-US", 5, 60, 5, "#"),
        Connect(("Connecting you.",), "en-US", 8, "agents"),
        End(("Goodbye.",), "en-US"),
    ]
    for instruction in instructions:
        cached.render(instruction)  # now kept
        direct = TwimlRenderer(BASE, {"agents": "queue:agents"})._render(instruction)  # no cache, real number
        assert cached.render(instruction) == direct

    third, fourth = (cached.render(Ask(("Press 1.",), "en-US", n, 1, 6)) for n in (3, 4))
    assert third.count("?seq=3") == 2 and "seq=4" not in third  # the Gather's action and the Redirect
    assert fourth.count("?seq=4") == 2 and "seq=3" not in fourth
    assert "Press 1 &amp; say &lt;yes&gt;." in cached.render(instructions[0])
