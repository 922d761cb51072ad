"""Flow definitions from TOML data: parsing, validation and the content hash (version).

The version is the SHA-256 of the definition's canonical JSON (sorted keys, no
insignificant whitespace), so reformatting or commenting a file never makes a new
version, and any change to a word a caller hears always does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import string
import tomllib
from collections.abc import Iterator, Mapping
from importlib import resources
from typing import Any

from flows.graph import in_call_order, successors
from flows.model import (
    Choice,
    CollectStep,
    ConfirmStep,
    DecideStep,
    Decision,
    Flow,
    GoodbyeStep,
    IdentifyStep,
    MenuStep,
    NumberStep,
    Prompt,
    Purpose,
    RecordStep,
    RequestStep,
    Retry,
    ReturnStep,
    SayStep,
    Step,
    TransferStep,
)

__all__ = [
    "FlowDefinitionError",
    "REQUIRED_MESSAGES",
    "builtin_flows",
    "canonical_json",
    "parse_flow",
    "parse_toml",
    "version_of",
]

# Flow-wide messages every definition must provide, in every language.
REQUIRED_MESSAGES = ("invalid", "no_input", "too_many_attempts", "system_error", "unknown_call")
TEMPLATE_FIELDS = frozenset({"choice", "purpose", "statement", "reference", "minutes"})
# Logical places a transfer step may send a caller; the deployment says where each is.
DESTINATIONS = frozenset({"agents"})
MAX_RECORDING_S = 3600  # Twilio's own <Record maxLength> ceiling


class FlowDefinitionError(Exception):
    """A definition that cannot be served; ``problems`` lists every issue found."""

    def __init__(self, name: str, problems: list[str]) -> None:
        super().__init__(f"flow {name!r}: " + "; ".join(problems))
        self.name, self.problems = name, problems


def canonical_json(definition: Mapping[str, Any]) -> str:
    return json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def version_of(definition: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(definition).encode("utf-8")).hexdigest()


def parse_toml(text: str) -> Flow:
    return parse_flow(tomllib.loads(text))


def builtin_flows() -> dict[str, Flow]:
    """The flows shipped in ``flows/definitions``, by name."""
    flows: dict[str, Flow] = {}
    for entry in resources.files("flows.definitions").iterdir():
        if entry.name.endswith(".toml"):
            flow = parse_toml(entry.read_text(encoding="utf-8"))
            flows[flow.name] = flow
    return flows


def parse_flow(definition: Mapping[str, Any]) -> Flow:
    """Build a Flow from its definition; raise FlowDefinitionError listing all problems."""
    name = str(definition.get("name", "?"))
    problems: list[str] = []
    try:
        flow = _build(definition)
    except (KeyError, TypeError, ValueError) as exc:
        raise FlowDefinitionError(name, [f"malformed definition: {exc!r}"]) from exc
    problems.extend(_problems(flow))
    if problems:
        raise FlowDefinitionError(name, problems)
    return flow


def _build(d: Mapping[str, Any]) -> Flow:
    limits = d.get("limits", {})
    return Flow(
        name=d["name"],
        version=version_of(d),
        start=d["start"],
        languages=dict(d["languages"]),
        default_language=d["default_language"],
        max_attempts=int(limits.get("max_attempts", 3)),
        no_input_timeout_s=int(limits.get("no_input_timeout_s", 6)),
        messages={key: _prompt(text) for key, text in d["messages"].items()},
        purposes={key: _purpose(key, p) for key, p in d.get("purposes", {}).items()},
        steps={step_id: _step(step_id, s) for step_id, s in d["steps"].items()},
        operator=d.get("operator"),
        definition=d,
    )


def _prompt(texts: Mapping[str, str]) -> Prompt:
    return Prompt(texts=dict(texts))


def _purpose(key: str, p: Mapping[str, Any]) -> Purpose:
    honor = p.get("honor_business_days")
    return Purpose(
        key=key,
        label=_prompt(p["label"]),
        grant=_prompt(p["grant"]),
        revoke=_prompt(p["revoke"]),
        statement=_prompt(p["statement"]) if "statement" in p else None,
        honor_business_days=int(honor) if honor is not None else None,
        opt_out_days=int(p["opt_out_days"]) if "opt_out_days" in p else None,
        scope=str(p.get("scope", "standing")),
        notice_step=p.get("notice_step"),
    )


def _choice(c: Mapping[str, Any]) -> Choice:
    action = c.get("action")
    return Choice(
        next=c["next"],
        purpose=c.get("purpose"),
        action=Decision(action) if action else None,
        request=c.get("request"),
        lang=dict(c["lang"]) if "lang" in c else None,
    )


def _retry(s: Mapping[str, Any]) -> Retry:
    on_invalid, on_no_input = s.get("on_invalid"), s.get("on_no_input")
    max_attempts = s.get("max_attempts")
    return Retry(
        on_invalid=_prompt(on_invalid) if on_invalid else None,
        on_no_input=_prompt(on_no_input) if on_no_input else None,
        max_attempts=int(max_attempts) if max_attempts is not None else None,
    )


_KINDS: dict[str, type[Step]] = {
    cls.kind: cls
    for cls in (
        SayStep,
        MenuStep,
        CollectStep,
        ConfirmStep,
        DecideStep,
        RecordStep,
        TransferStep,
        ReturnStep,
        IdentifyStep,
        NumberStep,
        RequestStep,
        GoodbyeStep,
    )
}
_PROMPT_FIELDS = frozenset({"say", "ask_account", "ask_pin", "unknown_account", "wrong_pin", "locked", "hard_locked"})
_CHOICE_FIELDS = frozenset({"choices", "codes"})
_RETRY_KEYS = frozenset({"on_invalid", "on_no_input", "max_attempts"})


def _step(step_id: str, s: Mapping[str, Any]) -> Step:
    """A step from its table: each key fills the field of the same name; unknown keys are errors."""
    cls = _KINDS.get(s["kind"])
    if cls is None:
        raise ValueError(f"step {step_id!r}: unknown kind {s['kind']!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(s) - names - {"kind"} - (_RETRY_KEYS if "retry" in names else set())
    if unknown:
        raise ValueError(f"step {step_id!r}: unknown key(s) {', '.join(sorted(unknown))} for a {cls.kind} step")
    args: dict[str, Any] = {"id": step_id}
    for name in names & set(s):
        value = s[name]
        if name in _PROMPT_FIELDS:
            value = _prompt(value)
        elif name in _CHOICE_FIELDS:
            value = {str(key): _choice(c) for key, c in value.items()}
        args[name] = value
    if "retry" in names:
        args["retry"] = _retry(s)
    return cls(**args)


# --- validation --------------------------------------------------------------------------


def _problems(flow: Flow) -> Iterator[str]:
    yield from _flow_problems(flow)
    for label, prompt in _all_prompts(flow):
        yield from _prompt_problems(flow, label, prompt)
    for step in flow.steps.values():
        yield from _step_problems(flow, step)
    for key, purpose in flow.purposes.items():
        if purpose.scope not in ("standing", "call"):
            yield f"purpose {key!r}: scope must be 'standing' or 'call'"
        if purpose.notice_step is not None:
            notice = flow.steps.get(purpose.notice_step)
            if not isinstance(notice, SayStep) or notice.notice is None:
                yield f"purpose {key!r}: notice_step {purpose.notice_step!r} is not a say step giving a notice"
    unreachable = set(flow.steps) - {step.id for step in in_call_order(flow)}
    for step_id in sorted(unreachable):
        yield f"step {step_id!r} is unreachable from {flow.start!r}"


def _flow_problems(flow: Flow) -> Iterator[str]:
    if flow.default_language not in flow.languages:
        yield f"default_language {flow.default_language!r} is not in languages"
    if flow.start not in flow.steps:
        yield f"start step {flow.start!r} does not exist"
    if flow.operator is not None and flow.operator not in flow.steps:
        yield f"operator step {flow.operator!r} does not exist"
    for key in REQUIRED_MESSAGES:
        if key not in flow.messages:
            yield f"message {key!r} is missing"


def _step_problems(flow: Flow, step: Step) -> Iterator[str]:
    where = f"step {step.id!r}"
    for target in successors(step):
        if target not in flow.steps:
            yield f"{where} goes to unknown step {target!r}"
    yield from _keys_problems(flow, step, where)
    if isinstance(step, TransferStep) and step.to not in DESTINATIONS:
        yield f"{where}: unknown destination {step.to!r} (known: {', '.join(sorted(DESTINATIONS))})"
    if isinstance(step, RecordStep) and not 1 <= step.max_length_s <= MAX_RECORDING_S:
        yield f"{where}: max_length_s must be 1 to {MAX_RECORDING_S}"
    for key, choice in _choices(step).items():
        yield from _choice_problems(flow, f"{where}: choice {key!r}", choice)


def _keys_problems(flow: Flow, step: Step, where: str) -> Iterator[str]:
    if isinstance(step, MenuStep):
        yield from (f"{where}: choice {key!r} is not a single phone key" for key in step.choices if not _is_key(key))
        if step.express is not None and not isinstance(flow.steps.get(step.express), CollectStep):
            yield f"{where}: express {step.express!r} is not a collect step"
    if isinstance(step, CollectStep):
        for code in step.codes:
            if not code.isdigit() or not step.min_length <= len(code) <= step.max_length:
                yield f"{where}: code {code!r} is not {step.min_length}-{step.max_length} digits"


def _is_key(key: str) -> bool:
    return len(key) == 1 and key in "0123456789*#"


def _choice_problems(flow: Flow, where: str, choice: Choice) -> Iterator[str]:
    if choice.purpose is not None and choice.purpose not in flow.purposes:
        yield f"{where} names unknown purpose {choice.purpose!r}"
    for source, target in (choice.lang or {}).items():
        if source not in flow.languages or target not in flow.languages:
            yield f"{where} switches {source!r} to {target!r}: unknown language"


def _all_prompts(flow: Flow) -> Iterator[tuple[str, Prompt]]:
    for key, prompt in flow.messages.items():
        yield f"message {key!r}", prompt
    for key, purpose in flow.purposes.items():
        for part in ("label", "grant", "revoke", "statement"):
            if getattr(purpose, part) is not None:
                yield f"purpose {key!r} {part}", getattr(purpose, part)
    for step in flow.steps.values():
        yield f"step {step.id!r}", step.say
        parts = _IDENTIFY_PROMPTS if isinstance(step, IdentifyStep) else ()
        retry = getattr(step, "retry", None)
        for owner, part in [(step, p) for p in parts] + [(retry, p) for p in ("on_invalid", "on_no_input")]:
            extra: Prompt | None = getattr(owner, part, None)
            if extra is not None:
                yield f"step {step.id!r} {part}", extra


_IDENTIFY_PROMPTS = ("ask_account", "ask_pin", "unknown_account", "wrong_pin", "locked", "hard_locked")


def _choices(step: Step) -> Mapping[str, Choice]:
    if isinstance(step, MenuStep):
        return step.choices
    if isinstance(step, CollectStep):
        return step.codes
    return {}


def _prompt_problems(flow: Flow, label: str, prompt: Prompt) -> Iterator[str]:
    for lang in flow.languages:
        text = prompt.texts.get(lang)
        if not text:
            yield f"{label} has no {lang!r} text"
            continue
        fields = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
        for unknown in sorted(fields - TEMPLATE_FIELDS):
            yield f"{label} ({lang}) uses unknown placeholder {{{unknown}}}"
