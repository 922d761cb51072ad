"""The vocabulary of voice flows: definitions, call state, input events, instructions, facts.

Everything here is a frozen dataclass or a string enum, so a flow, a call's state and
the engine's output can be compared, hashed, serialized and tested without any I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

__all__ = [
    "RequestStep",
    "RequestOpened",
    "OpenRequest",
    "NumberStep",
    "NoticeFact",
    "Progress",
    "SubjectKind",
    "PinVerdict",
    "PinChecked",
    "Pending",
    "IdentifyStep",
    "FindCustomer",
    "EffectResult",
    "Effect",
    "CustomerLookup",
    "CheckPin",
    "TransferStep",
    "ReturnStep",
    "RecordingFact",
    "Recorded",
    "RecordStep",
    "Record",
    "ConnectFact",
    "ConnectEnded",
    "Connect",
    "Ask",
    "CallStart",
    "CollectStep",
    "CallState",
    "Channel",
    "Choice",
    "ConfirmStep",
    "Decision",
    "DecisionFact",
    "DecideStep",
    "Digits",
    "End",
    "Fact",
    "Flow",
    "GoodbyeStep",
    "Identification",
    "Instruction",
    "KeypressFact",
    "KeypressOutcome",
    "MenuStep",
    "NoInput",
    "Outcome",
    "AbandonFact",
    "Event",
    "Prompt",
    "Purpose",
    "Retry",
    "SayStep",
    "Step",
    "WaitingStep",
]


class Decision(StrEnum):
    """What a caller did about a purpose."""

    GRANT = "grant"
    REVOKE = "revoke"


class Channel(StrEnum):
    """How a decision reached us (docs/architecture.md, rule 5)."""

    KEYPAD = "keypad"
    DIALING_STRING = "dialing_string"
    VERBAL = "verbal"
    AGENT_ASSISTED = "agent_assisted"


class Identification(StrEnum):
    """How the subject of a decision was identified."""

    ANI = "ani"  # caller ID only, unverified
    ANI_PIN = "ani_pin"  # caller ID matched a customer, who then gave their PIN
    ACCOUNT_PIN = "account_pin"  # account number and PIN typed by the caller
    KEYED_NUMBER = "keyed_number"  # caller ID withheld; the caller typed the number, unverified


class SubjectKind(StrEnum):
    PHONE = "phone"  # an E.164 number: who called
    CUSTOMER = "customer"  # an account number: the identified customer


class PinVerdict(StrEnum):
    OK = "ok"
    WRONG = "wrong"
    LOCKED = "locked"  # too many wrong PINs lately: entry refused whatever was typed, for a while
    HARD_LOCKED = "hard_locked"  # too many in a day: refused until staff restore PIN entry


class KeypressOutcome(StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    NO_INPUT = "no_input"


# --- definitions -------------------------------------------------------------------


@dataclass(frozen=True)
class Prompt:
    """The words of one prompt, per language code (``{"en": "..."}``).

    Texts may hold ``{choice}`` and ``{purpose}`` placeholders, filled from the
    caller's pending choice; nothing else is ever substituted.
    """

    texts: Mapping[str, str]

    def text(self, lang: str, **fields: str) -> str:
        return self.texts[lang].format_map(fields)


@dataclass(frozen=True)
class Purpose:
    """A purpose a caller can grant or revoke, with the words that describe each act."""

    key: str
    label: Prompt
    grant: Prompt
    revoke: Prompt
    statement: Prompt | None = None  # what a caller says to consent verbally ({statement})
    honor_business_days: int | None = None  # a revocation must be honored within this many
    opt_out_days: int | None = None  # opt-out basis: deemed granted this long after the notice
    scope: str = "standing"  # "call": a decision in effect only until the call ends
    # The say step whose notice a caller must have heard, to its end, on this call before
    # granting (CPNI: 47 CFR 64.2008). The engine plays it first whatever path led here.
    notice_step: str | None = None

    def describe(self, action: Decision) -> Prompt:
        return self.grant if action is Decision.GRANT else self.revoke


@dataclass(frozen=True)
class Choice:
    """Where a key leads, and what it sets on the pending choice."""

    next: str
    purpose: str | None = None
    action: Decision | None = None
    request: str | None = None  # a request type (removal of referral data, forum posts…)
    lang: Mapping[str, str] | None = None  # language switch: from the call's language to another


@dataclass(frozen=True)
class SayStep:
    """Speaks its prompt and moves on; chained into the next prompt so callers can barge in.

    A step that gives a legal notice names it (``notice = "cpni"``): the fact that the
    caller heard it, in those words, becomes evidence (the CPNI opt-out clock starts there).
    """

    kind: ClassVar[str] = "say"
    id: str
    say: Prompt
    next: str
    notice: str | None = None


@dataclass(frozen=True)
class Retry:
    """How a waiting step handles a wrong answer or silence (flow-wide messages by default)."""

    on_invalid: Prompt | None = None
    on_no_input: Prompt | None = None
    max_attempts: int | None = None


@dataclass(frozen=True)
class MenuStep:
    """Waits for one key and follows the matching choice.

    ``*`` starts a dialing string when ``express`` names the collect step that reads
    it; otherwise ``*`` repeats the question. ``0`` reaches the flow's operator step,
    if it has one and the menu does not use 0 itself.
    """

    kind: ClassVar[str] = "menu"
    id: str
    say: Prompt
    choices: Mapping[str, Choice]
    express: str | None = None
    retry: Retry = Retry()


@dataclass(frozen=True)
class CollectStep:
    """Reads a dialing string ended by ``#`` and follows the code it matches.

    Every accepted code is listed in the definition, so the complete set of dialing
    strings a caller can use is readable in one place.
    """

    kind: ClassVar[str] = "collect"
    id: str
    say: Prompt
    min_length: int
    max_length: int
    codes: Mapping[str, Choice]
    retry: Retry = Retry()
    finish_on_key: ClassVar[str] = "#"


@dataclass(frozen=True)
class ConfirmStep:
    """Reads the pending choice back: 1 goes on to ``yes``, 2 goes back where it was chosen."""

    kind: ClassVar[str] = "confirm"
    id: str
    say: Prompt
    yes: str
    retry: Retry = Retry()
    confirm_key: ClassVar[str] = "1"
    back_key: ClassVar[str] = "2"


@dataclass(frozen=True)
class DecideStep:
    """Emits the pending decision as a fact; its prompt is heard only once that fact is stored."""

    kind: ClassVar[str] = "decide"
    id: str
    say: Prompt
    next: str


@dataclass(frozen=True)
class RecordStep:
    """Announces a recording, records a spoken statement after the beep, then goes on.

    The statement's recording becomes the evidence of a verbal decision made next.
    """

    kind: ClassVar[str] = "record"
    id: str
    say: Prompt
    next: str
    max_length_s: int = 120
    min_length_s: int = 1  # anything shorter is no statement (kept, but asked again)
    optional: bool = False  # silence skips it instead of asking again
    retry: Retry = Retry()
    finish_on_key: ClassVar[str] = "#"


@dataclass(frozen=True)
class NumberStep:
    """Asks for the phone number a revocation is for, only when the caller ID is withheld.

    A withheld or unusable caller ID never becomes a subject. Such a caller can revoke
    for a number they key in (revoking is always safe), but a keyed-in number proves
    nothing about who is calling, so a grant goes to ``on_grant`` instead (where the
    caller identifies with account and PIN, or is told to call from that number).
    """

    kind: ClassVar[str] = "number"
    id: str
    say: Prompt
    next: str
    # Optional only so that versions stored before it existed still load (calls in progress
    # across an upgrade finish on theirs); without it a grant meets the engine's refusal.
    on_grant: str | None = None
    retry: Retry = Retry()
    finish_on_key: ClassVar[str] = "#"


@dataclass(frozen=True)
class RequestStep:
    """Opens the pending request for staff to work through; its words carry ``{reference}``."""

    kind: ClassVar[str] = "request"
    id: str
    say: Prompt
    next: str


@dataclass(frozen=True)
class TransferStep:
    """Connects the caller to a destination (``agents``: the configured agent target)."""

    kind: ClassVar[str] = "transfer"
    id: str
    say: Prompt
    to: str
    next: str  # after the connected call ends
    on_failure: str  # busy, no answer, queue full…


@dataclass(frozen=True)
class ReturnStep:
    """Connects the caller back to whoever transferred them in (the call's ``return_to``)."""

    kind: ClassVar[str] = "return"
    id: str
    say: Prompt
    next: str
    on_failure: str


@dataclass(frozen=True)
class IdentifyStep:
    """Binds the call to a customer: caller ID plus PIN, or account number plus PIN.

    The service looks customers up and checks PINs (the engine asks it to, see
    ``FindCustomer`` and ``CheckPin``); PIN digits never enter the call state or the
    evidence. A typed account number is always followed by the PIN question, and an
    unknown account fails as a wrong PIN does, in the same words (``wrong_pin``), after
    the same number of tries: the line never tells whether an account exists.
    """

    kind: ClassVar[str] = "identify"
    id: str
    say: Prompt
    ask_account: Prompt
    ask_pin: Prompt
    wrong_pin: Prompt  # said for a wrong PIN and for an unknown account alike
    next: str
    on_failure: str
    locked: Prompt | None = None  # PIN entry locked after too many wrong PINs ({minutes})
    hard_locked: Prompt | None = None  # locked until staff restore it: whom to contact
    # Never said (an unknown account gets ``wrong_pin``): kept so that flow versions
    # stored before the two were one still load.
    unknown_account: Prompt | None = None
    retry: Retry = Retry()
    finish_on_key: ClassVar[str] = "#"


@dataclass(frozen=True)
class GoodbyeStep:
    """Speaks its prompt and ends the call."""

    kind: ClassVar[str] = "goodbye"
    id: str
    say: Prompt


Step = (
    SayStep
    | MenuStep
    | CollectStep
    | ConfirmStep
    | DecideStep
    | RecordStep
    | TransferStep
    | ReturnStep
    | IdentifyStep
    | NumberStep
    | RequestStep
    | GoodbyeStep
)
WaitingStep = MenuStep | CollectStep | ConfirmStep | RecordStep | IdentifyStep | NumberStep


@dataclass(frozen=True)
class Flow:
    """A whole voice flow as data, identified by name and content hash."""

    name: str
    version: str
    start: str
    languages: Mapping[str, str]  # our language code -> Twilio <Say language>
    default_language: str
    max_attempts: int
    no_input_timeout_s: int
    messages: Mapping[str, Prompt]
    purposes: Mapping[str, Purpose]
    steps: Mapping[str, Step]
    operator: str | None  # the step key 0 leads to from any menu, if any
    definition: Mapping[str, object] = field(compare=False, repr=False)


# --- calls ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CallStart:
    """Who is calling whom, as Twilio reported it; and the agent, if one transferred them in."""

    call_sid: str
    caller: str
    dialed: str
    agent: str | None = None
    return_to: str | None = None
    transfer_id: str | None = None
    first_seq: int = 0  # prompts already numbered on this call (a transfer continues after them)


@dataclass(frozen=True)
class CallState:
    """Everything about a live call between two webhooks (kept in Redis).

    ``seq`` counts the inputs the call has accepted; each prompt's action URL carries
    it, so a stale or duplicated webhook is recognised instead of moving the call.
    ``spoken`` is exactly what is playing now, utterance by utterance: ``heard`` (its
    text) is the evidence of what the caller heard before their next key, and a
    replay renders it word for word.
    """

    call_sid: str
    caller: str
    dialed: str
    flow_name: str
    flow_version: str
    lang: str
    step: str
    seq: int = 0
    attempts: int = 0
    spoken: tuple[str, ...] = ()
    purpose: str | None = None
    action: Decision | None = None
    chosen_at: str | None = None
    channel: Channel = Channel.KEYPAD
    trail: tuple[str, ...] = ()
    recording_sid: str | None = None  # the statement backing a verbal decision
    identify_phase: str | None = None  # "account" or "pin" while an identify step asks
    customer: str | None = None  # the account number, once matched or identified
    identification: Identification = Identification.ANI
    subject_phone: str | None = None  # a number keyed in by a caller whose ID is withheld
    request_type: str | None = None
    reference: str | None = None  # of the request opened on this call
    return_to: str | None = None  # where an agent-transferred caller goes back to
    agent: str | None = None  # the agent who transferred the caller in
    transfer_id: str | None = None
    finished: bool = False
    # The first ``fixed`` utterances of ``spoken`` play before the caller can answer (a
    # legal notice is heard whole, never barged in on); the rest may be interrupted.
    fixed: int = 0
    notice_playing: str | None = None  # a notice step now playing, heard once the call answers after it
    notices_heard: tuple[str, ...] = ()  # notices heard to their end on this call
    resume_at: str | None = None  # where a grant goes on after the notice it needed first

    @property
    def heard(self) -> str:
        return " ".join(self.spoken)


# --- events --------------------------------------------------------------------------


@dataclass(frozen=True)
class Digits:
    """Keys the caller pressed in answer to the prompt numbered ``seq``."""

    seq: int
    digits: str
    finished_on_key: str = ""


@dataclass(frozen=True)
class NoInput:
    """The prompt numbered ``seq`` timed out with no key pressed."""

    seq: int


@dataclass(frozen=True)
class Recorded:
    """The recording made at prompt ``seq`` ended (by a key, silence or the caller hanging up)."""

    seq: int
    recording_sid: str
    recording_url: str
    duration_s: int
    ended_by: str  # the key pressed, or "hangup"


@dataclass(frozen=True)
class ConnectEnded:
    """The connection made at prompt ``seq`` ended, with Twilio's Dial or queue result."""

    seq: int
    status: str


Event = Digits | NoInput | Recorded | ConnectEnded


# --- instructions ----------------------------------------------------------------------


@dataclass(frozen=True)
class Ask:
    """Play ``speech`` and wait for keys; answer to prompt ``seq``.

    The first ``fixed`` utterances play to their end before keys are listened for (a
    notice); the rest may be interrupted by the caller's answer.
    """

    speech: tuple[str, ...]
    language: str
    seq: int
    num_digits: int | None  # None: any number of keys, ended by finish_on_key or silence
    timeout_s: int
    finish_on_key: str = ""
    fixed: int = 0


@dataclass(frozen=True)
class End:
    """Play ``speech`` and hang up."""

    speech: tuple[str, ...]
    language: str


@dataclass(frozen=True)
class Record:
    """Play ``speech`` (not interruptible), beep, record until ``finish_on_key`` or silence."""

    speech: tuple[str, ...]
    language: str
    seq: int
    max_length_s: int
    timeout_s: int
    finish_on_key: str


@dataclass(frozen=True)
class Connect:
    """Play ``speech`` and connect the caller to ``destination``; report back on prompt ``seq``.

    ``destination`` is a logical name (``agents``) or a concrete target
    (``client:NAME``, ``sip:URI``, ``queue:NAME``, an E.164 number).
    """

    speech: tuple[str, ...]
    language: str
    seq: int
    destination: str


Instruction = Ask | Record | Connect | End


# --- requests to the service, and its answers ---------------------------------------------


@dataclass(frozen=True)
class FindCustomer:
    """Which customer has this phone number (only if exactly one) or this account number?"""

    phone: str | None = None
    account: str | None = None


@dataclass(frozen=True)
class CheckPin:
    """Is ``pin`` right for ``account``? (counted towards the account's lockout)"""

    account: str
    pin: str = field(repr=False)


@dataclass(frozen=True)
class OpenRequest:
    """Open a request of ``request_type`` for staff (``recording_sid``: the caller's description)."""

    request_type: str
    recording_sid: str | None


Effect = FindCustomer | CheckPin | OpenRequest


@dataclass(frozen=True)
class CustomerLookup:
    account: str | None  # None: no such customer (or no single one for that number)


@dataclass(frozen=True)
class PinChecked:
    verdict: PinVerdict
    locked_for_s: int | None = None  # with LOCKED: how long PIN entry stays locked (HARD_LOCKED: until staff lift it)


@dataclass(frozen=True)
class RequestOpened:
    reference: str  # digits the caller can write down and quote


EffectResult = CustomerLookup | PinChecked | RequestOpened


# --- evidence facts ----------------------------------------------------------------------


@dataclass(frozen=True)
class KeypressFact:
    seq: int
    step: str
    digits: str
    finished_on_key: str
    outcome: KeypressOutcome
    heard: str
    lang: str


@dataclass(frozen=True)
class DecisionFact:
    seq: int
    step: str
    purpose: str
    action: Decision
    channel: Channel
    identification: Identification
    raw_digits: str
    heard: str
    lang: str
    subject: str
    subject_kind: SubjectKind
    recording_sid: str | None = None
    agent: str | None = None
    honor_business_days: int | None = None  # for revocations that must be honored by a deadline
    scope: str = "standing"


@dataclass(frozen=True)
class RecordingFact:
    seq: int
    step: str
    recording_sid: str
    recording_url: str
    duration_s: int
    ended_by: str
    heard: str
    lang: str


@dataclass(frozen=True)
class ConnectFact:
    seq: int
    step: str
    destination: str
    status: str
    connected: bool


@dataclass(frozen=True)
class NoticeFact:
    """The caller heard notice ``notice`` in these words (``seq``: the prompt it was part of)."""

    seq: int
    step: str
    notice: str
    text: str
    lang: str


@dataclass(frozen=True)
class AbandonFact:
    step: str


Fact = KeypressFact | DecisionFact | RecordingFact | ConnectFact | NoticeFact | AbandonFact


@dataclass(frozen=True)
class Outcome:
    """What the engine decided: the new state, what the caller hears, what to store."""

    state: CallState
    instruction: Instruction
    facts: tuple[Fact, ...] = ()
    stale: bool = False
    # True when the instruction cannot be rebuilt word for word from the state (the
    # state has moved past it): the service must keep the answer it rendered, so a
    # repeated webhook hears exactly the same.
    keep_answer: bool = False

    @property
    def decides(self) -> bool:
        return any(isinstance(f, DecisionFact) for f in self.facts)


@dataclass(frozen=True)
class Pending:
    """The engine needs the service to look something up before it can answer the caller.

    The service performs ``effect`` and hands the answer to ``engine.resume``; ``speech``
    is what has been said so far and will be said with the answer.
    """

    state: CallState
    effect: Effect
    facts: tuple[Fact, ...] = ()
    speech: tuple[str, ...] = ()
    event: Event | None = None  # the answer being checked (PIN digits withheld)


Progress = Outcome | Pending
