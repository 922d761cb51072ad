"""A flow printed as the script a compliance officer reads and signs off.

Steps appear in the order a caller meets them (breadth-first from the start), each
with every prompt in every language, every key and where it leads, and what happens
on a wrong key or silence. Placeholders are shown as written (``{choice}``) and the
purposes that fill them are listed at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from flows.graph import in_call_order
from flows.model import (
    Choice,
    CollectStep,
    ConfirmStep,
    DecideStep,
    Flow,
    GoodbyeStep,
    IdentifyStep,
    MenuStep,
    NumberStep,
    Prompt,
    RecordStep,
    RequestStep,
    ReturnStep,
    SayStep,
    Step,
    TransferStep,
)

__all__ = ["render_script"]

_WHAT = {
    SayStep.kind: "says, then goes on",
    MenuStep.kind: "asks for one key",
    CollectStep.kind: "asks for a code ended by #",
    ConfirmStep.kind: "reads the choice back",
    DecideStep.kind: "records the decision (heard only once it is stored)",
    RecordStep.kind: "records what the caller says after the beep",
    TransferStep.kind: "connects the caller",
    ReturnStep.kind: "connects the caller back to the agent who transferred them",
    IdentifyStep.kind: "confirms who the caller is (caller ID or account number, then PIN)",
    NumberStep.kind: "asks which phone number this is for (only when the caller ID is withheld)",
    RequestStep.kind: "opens the request for staff and reads out its reference number",
    GoodbyeStep.kind: "says goodbye and hangs up",
}


def render_script(flow: Flow) -> str:
    lines = [
        f"FLOW {flow.name}",
        f"version {flow.version}",
        "languages: " + ", ".join(f"{code} ({voice})" for code, voice in flow.languages.items()),
        f"each question: {flow.max_attempts} attempts; {flow.no_input_timeout_s} s of silence is no answer",
        "",
    ]
    for step in _in_call_order(flow):
        lines.extend(_step_lines(flow, step))
        lines.append("")
    lines.append("PURPOSES")
    for purpose in flow.purposes.values():
        lines.append(f"  {purpose.key}")
        lines.extend(_prompt_lines("label", purpose.label, indent=4))
        lines.extend(_prompt_lines("grant", purpose.grant, indent=4))
        lines.extend(_prompt_lines("revoke", purpose.revoke, indent=4))
        if purpose.statement is not None:
            lines.extend(_prompt_lines("statement", purpose.statement, indent=4))
        if purpose.opt_out_days is not None:
            lines.append(
                f"    opt-out basis: deemed granted {purpose.opt_out_days} days after the notice unless restricted"
            )
        if purpose.notice_step is not None:
            lines.append(f"    a grant is always preceded on the call by the whole notice of {purpose.notice_step}")
        if purpose.honor_business_days is not None:
            lines.append(f"    a revocation is honored within {purpose.honor_business_days} business days")
    lines.append("")
    lines.append("MESSAGES")
    for key, prompt in flow.messages.items():
        lines.extend(_prompt_lines(key, prompt, indent=2))
    return "\n".join(lines) + "\n"


def _in_call_order(flow: Flow) -> Iterator[Step]:
    reachable = list(in_call_order(flow))
    yield from reachable
    seen = {step.id for step in reachable}
    yield from (step for step in flow.steps.values() if step.id not in seen)  # still printed


def _step_lines(flow: Flow, step: Step) -> list[str]:
    lines = [f"[{step.id}] {_WHAT[step.kind]}"]
    lines.extend(_prompt_lines("says", step.say, indent=2))
    lines.extend(_DETAILS.get(step.kind, _nothing)(flow, step))
    retry = getattr(step, "retry", None)
    if retry is not None:
        attempts = retry.max_attempts or flow.max_attempts
        lines.extend(_prompt_lines("wrong key", retry.on_invalid or flow.messages["invalid"], indent=2))
        lines.extend(_prompt_lines("silence", retry.on_no_input or flow.messages["no_input"], indent=2))
        lines.append(f"  after {attempts} wrong keys or silences -> too_many_attempts, hang up")
    return lines


def _nothing(flow: Flow, step: Any) -> list[str]:
    return []


def _then(flow: Flow, step: Any) -> list[str]:
    notice = getattr(step, "notice", None)
    evidence = (
        [f"  plays whole, before any key is heard; kept as evidence (notice {notice!r}) once the call answers after it"]
        if notice
        else []
    )
    grants = [f"  a grant (never for a keyed-in number) -> {step.on_grant}"] if getattr(step, "on_grant", None) else []
    return evidence + grants + [f"  then -> {step.next}"]


def _record(flow: Flow, step: Any) -> list[str]:
    skip = "; silence skips it" if step.optional else ""
    return [f"  records {step.min_length_s} to {step.max_length_s} s; # or silence ends it; then -> {step.next}{skip}"]


def _connect(flow: Flow, step: Any) -> list[str]:
    to = [f"  to: {step.to}"] if isinstance(step, TransferStep) else []
    return to + [f"  when the call ends -> {step.next}; if it cannot connect -> {step.on_failure}"]


def _identify(flow: Flow, step: Any) -> list[str]:
    lines = [
        "  caller ID of exactly one customer -> asks for the PIN; otherwise for the account number, then the PIN",
        "  an unknown account is asked for a PIN too and fails in the words of a wrong PIN (wrong_pin)",
    ]
    for part in ("ask_account", "ask_pin", "wrong_pin", "locked", "hard_locked"):
        if getattr(step, part) is not None:
            lines.extend(_prompt_lines(part, getattr(step, part), indent=2))
    lines.append(f"  PIN right -> {step.next}; attempts used up or PIN entry locked -> {step.on_failure}")
    return lines


def _menu(flow: Flow, step: Any) -> list[str]:
    lines = [f"  key {key} -> {_describe(choice)}" for key, choice in step.choices.items()]
    if step.express:
        lines.append(f"  key * -> a dialing string, read at {step.express}")
    elif "*" not in step.choices:
        lines.append("  key * -> repeats the question")
    if flow.operator and "0" not in step.choices:
        lines.append(f"  key 0 -> {flow.operator}")
    return lines


def _collect(flow: Flow, step: Any) -> list[str]:
    lines = [f"  accepts {step.min_length} to {step.max_length} digits:"]
    return lines + [f"    {code}# -> {_describe(choice)}" for code, choice in step.codes.items()]


def _confirm(flow: Flow, step: Any) -> list[str]:
    return [f"  key {step.confirm_key} -> {step.yes}", f"  key {step.back_key} -> back to where the choice was made"]


_DETAILS: dict[str, Callable[[Flow, Any], list[str]]] = {
    SayStep.kind: _then,
    DecideStep.kind: _then,
    NumberStep.kind: _then,
    RequestStep.kind: _then,
    RecordStep.kind: _record,
    TransferStep.kind: _connect,
    ReturnStep.kind: _connect,
    IdentifyStep.kind: _identify,
    MenuStep.kind: _menu,
    CollectStep.kind: _collect,
    ConfirmStep.kind: _confirm,
}


def _describe(choice: Choice) -> str:
    sets = [
        f"purpose={choice.purpose}" if choice.purpose else "",
        f"action={choice.action}" if choice.action else "",
        f"request={choice.request}" if choice.request else "",
        "language " + ", ".join(f"{a}->{b}" for a, b in choice.lang.items()) if choice.lang else "",
    ]
    detail = ", ".join(part for part in sets if part)
    return choice.next + (f"  ({detail})" if detail else "")


def _prompt_lines(label: str, prompt: Prompt, *, indent: int) -> list[str]:
    pad = " " * indent
    return [f'{pad}{label} [{lang}]: "{text}"' for lang, text in prompt.texts.items()]
