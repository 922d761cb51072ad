"""The effective-state rules over any sequence of decisions (hypothesis, the real Postgres).

Random grants and revocations — from registered numbers, a number two accounts share,
an unknown number, a keyed-in number (withheld caller ID), and identified customers —
at random times, stored the way the call desk stores them. At every moment, for every
subject: the state Postgres computes is the one the rules of docs/consent-rules.md give
(a model written here from the document), it never says granted after a later
revocation that reaches the subject, and the suppression list says the same of every
number.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.loader import builtin_flows
from flows.model import CallState, Channel, Decision, DecisionFact, Identification, SubjectKind
from storage.consent_search import suppressed_numbers
from storage.consent_state import Status, consent_state
from storage.customers import Customer
from storage.evidence import CallRecord, call_row, fact_rows
from storage.ledger import chained
from tests.fake_twilio import new_caller
from tests.helpers import store_customer

FLOW = builtin_flows()["consent-line"]
PURPOSE = "telemarketing"
WITHHELD = "+266696687"
EASTERN = ZoneInfo("America/New_York")

# Who decides, from where, for whom the line binds it (CR-1 to CR-3):
#   ("ani", phone)          a visible caller ID, unidentified: grant or revoke, bound to the phone
#   ("pin", account, phone) a customer identified by PIN, calling from phone: bound to the account
#   ("keyed", phone)        a withheld caller ID: revoke only, bound to the number keyed in
DECIDERS = [
    ("ani", "P1"),
    ("ani", "P2"),
    ("ani", "P3"),
    ("pin", "A1", "P1"),
    ("pin", "A2", "P2"),
    ("pin", "A1", "P3"),
    ("keyed", "P1"),
    ("keyed", "P3"),
]
decisions = st.lists(
    st.tuples(st.sampled_from(DECIDERS), st.sampled_from([Decision.GRANT, Decision.REVOKE]), st.integers(1, 3600)),
    min_size=1,
    max_size=10,
)


@dataclass(frozen=True)
class Made:
    subject: str
    caller: str
    action: Decision
    identification: Identification
    at: datetime


def universe() -> tuple[dict[str, str], dict[str, set[str]]]:
    """Fresh accounts and numbers for one example: A1 has P1 and P2, A2 shares P2, P3 is no one's."""
    names = {"A1": str(secrets.randbelow(10**9) + 10**9), "A2": str(secrets.randbelow(10**9) + 10**9)}
    names |= {"P1": new_caller(), "P2": new_caller(), "P3": new_caller()}
    links = {"A1": {"P1", "P2"}, "A2": {"P2"}, "P1": {"A1"}, "P2": {"A1", "A2"}, "P3": set()}
    return names, links


def decided(decider: tuple[str, ...], action: Decision, names: dict[str, str], at: datetime) -> Made | None:
    kind = decider[0]
    if kind == "keyed":
        if action is Decision.GRANT:
            return None  # the line never takes a grant for a keyed-in number (CR-3)
        return Made(names[decider[1]], WITHHELD, action, Identification.KEYED_NUMBER, at)
    if kind == "pin":
        return Made(names[decider[1]], names[decider[2]], action, Identification.ACCOUNT_PIN, at)
    return Made(names[decider[1]], names[decider[1]], action, Identification.ANI, at)


def reaches(made: Made, subject: str, linked: set[str]) -> bool:
    """CR-1 and CR-4, as the document states them."""
    if made.subject == subject:
        return True
    if made.action is not Decision.REVOKE:
        return False
    if made.subject in linked:
        return True
    return made.caller == subject and made.identification is not Identification.KEYED_NUMBER


def expected(history: list[Made], subject: str, linked: set[str], at: datetime) -> Made | None:
    deciding = None
    for made in history:  # in the order stored: the latest reaching one at or before ``at`` decides
        if made.at <= at and reaches(made, subject, linked):
            deciding = made
    return deciding


async def store(db, made: Made, n: int) -> None:
    call_sid = "CA" + secrets.token_hex(16)
    state = CallState(call_sid, made.caller, "+18445550100", FLOW.name, FLOW.version, "en", "decide", seq=2)
    identified = made.identification is Identification.ACCOUNT_PIN
    fact = DecisionFact(
        seq=1,
        step="decide",
        purpose=PURPOSE,
        action=made.action,
        channel=Channel.KEYPAD,
        identification=made.identification,
        raw_digits="2,2,1",
        heard="You chose to ...",
        lang="en",
        subject=made.subject,
        subject_kind=SubjectKind.CUSTOMER if identified else SubjectKind.PHONE,
        honor_business_days=10 if made.action is Decision.REVOKE else None,
    )
    call = CallRecord(call_sid, "AC" + "0" * 32, made.caller, "+18445550100", "inbound")
    async with chained(db) as chain:
        chain.add([call_row(call, FLOW), *fact_rows(state, (fact,), f"prop-{n}", made.at, business_tz=EASTERN)])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=decisions)
async def test_no_grant_is_in_effect_after_a_revocation_that_reaches_the_subject(service, db, steps) -> None:
    names, links = universe()
    for account in ("A1", "A2"):
        phones = tuple(names[p] for p in sorted(links[account]))
        await store_customer(service, Customer(names[account], account, None, phones))
    base = datetime.now(UTC) - timedelta(days=1)
    history: list[Made] = []
    at = base
    for n, (decider, action, gap_s) in enumerate(steps):
        at += timedelta(seconds=gap_s)
        made = decided(decider, action, names, at)
        if made is not None:
            await store(db, made, n)
            history.append(made)
    moments = sorted({m.at for m in history} | {base, datetime.now(UTC)})

    for at in moments:
        suppressed = {r["phone"] for r in await suppressed_numbers(db, PURPOSE, as_of=at)}
        for key, subject in names.items():
            linked = {names[k] for k in links[key]}
            state = await consent_state(db, subject, PURPOSE, as_of=at)
            model = expected(history, subject, linked, at)
            want = {None: Status.NEVER_ASKED, Decision.GRANT: Status.GRANTED, Decision.REVOKE: Status.REVOKED}
            assert state.status is want[model.action if model else None], (key, at, history)
            if state.status is Status.GRANTED:
                assert model is not None
                later = [m for m in history if model.at < m.at <= at and m.action is Decision.REVOKE]
                assert not any(reaches(m, subject, linked) for m in later)
            if key.startswith("P"):
                assert (subject in suppressed) == (state.status is Status.REVOKED), (key, at)
