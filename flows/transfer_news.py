"""What an agent watching a transfer hears about one step of the call (pure)."""

from __future__ import annotations

from typing import Any

from flows.model import Connect, ConnectFact, DecisionFact, Flow, Outcome, ReturnStep

__all__ = ["News", "transfer_news"]

# (kind, detail): "decision", "returning", "returned", "return_failed".
News = list[tuple[str, dict[str, Any]]]


def transfer_news(flow: Flow, outcome: Outcome) -> News:
    """The news of this step for the call's transfer; none for a call no agent moved here."""
    state = outcome.state
    if state.transfer_id is None:
        return []
    news: News = []
    for fact in outcome.facts:
        if isinstance(fact, DecisionFact):
            detail = {
                "purpose": fact.purpose,
                "action": fact.action.value,
                "scope": fact.scope,
                "subject": fact.subject,
            }
            news.append(("decision", detail))
        elif isinstance(fact, ConnectFact) and isinstance(flow.steps.get(fact.step), ReturnStep):
            kind = "returned" if fact.connected else "return_failed"
            news.append((kind, {"to": state.return_to, "status": fact.status}))
    if isinstance(outcome.instruction, Connect) and isinstance(flow.steps.get(state.step), ReturnStep):
        news.append(("returning", {"to": state.return_to}))
    return news
