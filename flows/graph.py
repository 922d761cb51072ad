"""Where each step can lead: the one definition of a flow's step graph."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from flows.model import (
    CollectStep,
    ConfirmStep,
    DecideStep,
    Flow,
    IdentifyStep,
    MenuStep,
    NumberStep,
    RecordStep,
    RequestStep,
    ReturnStep,
    SayStep,
    Step,
    TransferStep,
)

__all__ = ["in_call_order", "successors"]


def successors(step: Step) -> list[str]:
    """The steps ``step`` may go to next (a confirm's "back" depends on the call, so is not listed)."""
    if isinstance(step, NumberStep):
        return [step.next] + ([step.on_grant] if step.on_grant else [])
    if isinstance(step, (SayStep, DecideStep, RecordStep, RequestStep)):
        return [step.next]
    if isinstance(step, (TransferStep, ReturnStep, IdentifyStep)):
        return [step.next, step.on_failure]
    if isinstance(step, MenuStep):
        return [c.next for c in step.choices.values()] + ([step.express] if step.express else [])
    if isinstance(step, CollectStep):
        return [c.next for c in step.codes.values()]
    if isinstance(step, ConfirmStep):
        return [step.yes]
    return []


def in_call_order(flow: Flow) -> Iterator[Step]:
    """Reachable steps, breadth-first from the start (and the operator step, if any)."""
    seen: set[str] = set()
    queue = deque([flow.start] + ([flow.operator] if flow.operator else []))
    while queue:
        step_id = queue.popleft()
        if step_id in seen or step_id not in flow.steps:
            continue
        seen.add(step_id)
        yield flow.steps[step_id]
        queue.extend(successors(flow.steps[step_id]))
