"""Service configuration, read once from environment variables and validated up front.

``Settings.from_env(environ)`` takes any mapping, so tests pass a dict instead of
patching ``os.environ``. Every problem is reported on its own line, named by the
variable the operator has to fix. Secrets are ``SecretStr`` and never shown in a repr.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ivr.access.pins import MIN_PEPPER_BYTES
from ivr.destinations import ReturnDestinations, is_flow_name, is_return_target
from ivr.evidence.receipts import Controller
from ivr.identifiers import ACCOUNT_SID, E164

__all__ = ["ConfigError", "Settings"]

DEFAULT_TWILIO_API_BASE_URL = "https://api.twilio.com"


class ConfigError(Exception):
    """The environment does not describe a runnable service; ``problems`` says why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _url_with_scheme(schemes: tuple[str, ...], what: str) -> AfterValidator:
    def check(value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in schemes:
            raise ValueError(f"must be a {what} URL starting with {' or '.join(s + '://' for s in schemes)}")
        if parts.scheme != "unix" and not parts.hostname and "host=" not in parts.query:
            raise ValueError(f"must name a host ({what} URL)")
        return value

    return AfterValidator(check)


def _base_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http:// or https:// URL, e.g. https://ivr.example.com")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    return value.rstrip("/")


def _connect_target(value: str) -> str:
    if not is_return_target(value):
        raise ValueError("must be queue:NAME, client:NAME, sip:URI or an E.164 number like +14155550100")
    return value


def _return_destinations(value: object) -> object:
    """``queue:support,client:*,sip:*@pbx.example.com,+1415555*`` -> the allow-list."""
    return ReturnDestinations.parse(value) if isinstance(value, str) else value


def _number_flows(value: object) -> object:
    """``+18005550100=telemarketing-opt-out,+18005550111=consent-line`` -> a dict."""
    if not isinstance(value, str):
        return value
    mapping: dict[str, str] = {}
    for pair in filter(None, (part.strip() for part in value.split(","))):
        number, _, flow = pair.partition("=")
        if not E164.match(number.strip()) or not is_flow_name(flow.strip()):
            raise ValueError(f"{pair!r} is not NUMBER=flow-name (an E.164 number, a flow name)")
        mapping[number.strip()] = flow.strip()
    return mapping


def _trusted_proxies(value: object) -> object:
    """``10.0.0.0/8,192.0.2.7`` -> networks whose ``X-Forwarded-For`` is believed."""
    if not isinstance(value, str):
        return value
    try:
        return [ipaddress.ip_network(part.strip()) for part in value.split(",") if part.strip()]
    except ValueError as exc:
        raise ValueError(f"must be IP addresses or networks separated by commas ({exc})") from None


def _signing_seed(value: SecretStr | None) -> SecretStr | None:
    """An Ed25519 private key as its 32-byte seed, base64 (``ivr checkpoint --new-key`` prints one)."""
    if value is None:
        return value
    try:
        seed = base64.b64decode(value.get_secret_value(), validate=True)
    except ValueError:
        raise ValueError("must be base64 (of an Ed25519 key's 32-byte seed)") from None
    if len(seed) != 32:
        raise ValueError("must be the base64 of exactly 32 bytes (an Ed25519 key's seed)")
    return value


def _pin_pepper(value: SecretStr | None) -> SecretStr | None:
    """The key PINs are hashed under (HMAC-SHA256) before scrypt: base64 of 32 bytes or more."""
    if value is None:
        return value
    try:
        key = base64.b64decode(value.get_secret_value(), validate=True)
    except ValueError:
        raise ValueError(f"must be base64 (of {MIN_PEPPER_BYTES} random bytes or more)") from None
    if len(key) < MIN_PEPPER_BYTES:
        raise ValueError(f"must be the base64 of at least {MIN_PEPPER_BYTES} bytes")
    return value


def _twilio_api_base(value: str) -> str:
    """Twilio's API gets our credentials: https only, but for a fake on this host (tests)."""
    parts = urlsplit(value)
    if parts.scheme != "https" and not _is_loopback(parts.hostname or ""):
        raise ValueError("must be an https:// URL (http:// only to a loopback host, such as a local test fake)")
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


RECORDING_KEY_BYTES = 32  # AES-256


def _recording_key_bytes(text: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except ValueError:
        raise ValueError("must be base64 (of a 32-byte AES-256 key)") from None
    if len(key) != RECORDING_KEY_BYTES:
        raise ValueError(f"must be the base64 of exactly {RECORDING_KEY_BYTES} bytes (an AES-256 key), not {len(key)}")
    return key


def _recording_key(value: SecretStr | None) -> SecretStr | None:
    if value is not None:
        _recording_key_bytes(value.get_secret_value())
    return value


def _recording_keys(value: SecretStr | None) -> SecretStr | None:
    """Base64 AES-256 keys separated by commas."""
    if value is None:
        return value
    for number, part in enumerate((p for p in value.get_secret_value().split(",") if p.strip()), start=1):
        try:
            _recording_key_bytes(part)
        except ValueError as exc:
            raise ValueError(f"key {number}: {exc}") from None
    return value


def _recording_key_file(value: Path | None) -> Path | None:
    """The current key's file; every other ``*.key`` beside it is an older key: all must be keys."""
    if value is None:
        return value
    for path in [value, *(p for p in sorted(value.parent.glob("*.key")) if p != value)]:
        try:
            _recording_key_bytes(path.read_text())
        except OSError as exc:
            raise ValueError(f"{path} cannot be read ({exc.strerror})") from None
        except ValueError as exc:
            raise ValueError(f"{path} {exc}") from None
    return value


# Standard Webhooks' example schedule after the first attempt: 5 s, 5 min, 30 min, 2 h, 5 h,
# 10 h, 14 h, 20 h, 24 h.
DEFAULT_EVENT_RETRY_SCHEDULE_S = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0)


def _seconds_list(value: object) -> object:
    """``5,300,1800`` -> waits in seconds (at least one, none negative, none over a day)."""
    if not isinstance(value, str):
        return value
    try:
        waits = tuple(float(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise ValueError("must be seconds separated by commas, e.g. 5,300,1800") from None
    if not waits or any(not 0 <= w <= 86_400 for w in waits):
        raise ValueError("must be one or more waits of 0 to 86400 seconds")
    return waits


def _time_zone(value: object) -> object:
    """``America/New_York`` -> the IANA time zone (its rules, daylight saving included)."""
    if not isinstance(value, str):
        return value
    try:
        return ZoneInfo(value.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be an IANA time zone name, like America/New_York or America/Chicago") from None


# 47 CFR 64.2009: CPNI approval records are kept at least a year after they stop applying.
MIN_CPNI_RETENTION_DAYS = 365


def _retention_periods(value: object) -> object:
    """``cpni=1826,telemarketing=1826`` -> days per purpose (CPNI never under a year)."""
    if not isinstance(value, str):
        return value
    periods: dict[str, int] = {}
    for pair in filter(None, (part.strip() for part in value.split(","))):
        purpose, _, days = pair.partition("=")
        if not is_flow_name(purpose.replace("_", "-")) or not days.strip().isdigit():
            raise ValueError(f"{pair!r} is not purpose=days")
        periods[purpose.strip()] = int(days)
    if periods.get("cpni", MIN_CPNI_RETENTION_DAYS) < MIN_CPNI_RETENTION_DAYS:
        raise ValueError(f"cpni must be kept at least {MIN_CPNI_RETENTION_DAYS} days")
    return periods


def masked_url(text: str) -> str:
    """``scheme://user:secret@host`` -> ``scheme://user:***@host``; other text as it is."""
    parts = urlsplit(text) if "://" in text else None
    if parts is None or parts.password is None:
        return text
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{parts.netloc.rpartition('@')[2]}"))


class Settings(BaseModel):
    """Everything the service reads from its environment."""

    # Python's re, not pydantic's Rust engine: the identifiers' patterns end in \Z (see ivr.identifiers).
    model_config = ConfigDict(
        frozen=True, extra="ignore", populate_by_name=True, arbitrary_types_allowed=True, regex_engine="python-re"
    )

    def __repr_args__(self) -> Any:
        """Fields as repr (and so tracebacks, logs, debuggers) show them: passwords in URLs
        masked, as SecretStr already masks the secrets themselves."""
        for name, value in super().__repr_args__():
            yield name, masked_url(value) if isinstance(value, str) else value

    database_url: Annotated[str | None, _url_with_scheme(("postgresql", "postgres"), "Postgres")] = Field(
        default=None, alias="DATABASE_URL"
    )
    # The tables' owner, for migrations, retention and the customer directory; unset, the
    # DATABASE_URL user is the owner and the service logs in as ivr_app on that server.
    migration_database_url: Annotated[str | None, _url_with_scheme(("postgresql", "postgres"), "Postgres")] = Field(
        default=None, alias="MIGRATION_DATABASE_URL"
    )
    redis_url: Annotated[str | None, _url_with_scheme(("redis", "rediss", "unix"), "Redis")] = Field(
        default=None, alias="REDIS_URL"
    )
    twilio_auth_token: SecretStr | None = Field(default=None, alias="TWILIO_AUTH_TOKEN")
    # A Webhook Rule's SharedKey: Twilio then signs with HMAC-SHA256 and says so in
    # X-Twilio-Webhooks-Signature-Settings (key=ID,algorithm=HMAC_SHA256).
    # A client that takes longer to send a request's body is holding a connection, not sending.
    body_read_timeout_s: float = Field(default=10.0, gt=0, le=60, alias="BODY_READ_TIMEOUT_S")
    twilio_webhook_shared_key: SecretStr | None = Field(default=None, alias="TWILIO_WEBHOOK_SHARED_KEY")
    twilio_webhook_shared_key_id: str | None = Field(
        default=None, alias="TWILIO_WEBHOOK_SHARED_KEY_ID", pattern=r"^[A-Za-z0-9_-]{1,128}\Z"
    )
    twilio_account_sid: str | None = Field(default=None, alias="TWILIO_ACCOUNT_SID", pattern=ACCOUNT_SID.pattern)
    public_base_url: Annotated[str | None, AfterValidator(_base_url)] = Field(default=None, alias="PUBLIC_BASE_URL")
    twilio_api_base_url: Annotated[str, AfterValidator(_base_url), AfterValidator(_twilio_api_base)] = Field(
        default=DEFAULT_TWILIO_API_BASE_URL, alias="TWILIO_API_BASE_URL"
    )
    agent_target: Annotated[str, AfterValidator(_connect_target)] = Field(default="queue:agents", alias="AGENT_TARGET")
    # Where an agent may send a caller back to after a transfer's flow (AGENT_TARGET too):
    # by default only this Twilio account's own clients and queues, never a number or a SIP
    # domain typed into a request. queue:NAME, client:NAME, sip:USER@HOST, sip:*@HOST or
    # +NUMBER; queue:, client: and numbers may end in * (any that begin so).
    transfer_return_destinations: Annotated[ReturnDestinations, BeforeValidator(_return_destinations)] = Field(
        default=ReturnDestinations(("client:*", "queue:*")), alias="TRANSFER_RETURN_DESTINATIONS"
    )
    # Live transfer event streams one process serves at once, per token and in all. An
    # agent's page needs one; streams hold no Redis connection, only a socket and a queue.
    transfer_streams_per_token: int = Field(default=5, ge=1, le=1000, alias="TRANSFER_STREAMS_PER_TOKEN")
    transfer_streams_per_process: int = Field(default=200, ge=1, le=10_000, alias="TRANSFER_STREAMS_PER_PROCESS")
    data_dir: Path = Field(default=Path("var"), alias="IVR_DATA_DIR")
    retention_days: int = Field(default=1826, ge=365, alias="RETENTION_DAYS")
    retention_periods: Annotated[dict[str, int], BeforeValidator(_retention_periods)] = Field(
        default_factory=dict, alias="RETENTION_PERIODS"
    )
    api_rate_per_min: int = Field(default=600, ge=1, alias="API_RATE_PER_MIN")
    login_rate_per_min: int = Field(default=10, ge=1, alias="LOGIN_RATE_PER_MIN")  # per client address
    # Wrong passwords for one username from one address: this many are free, then each one
    # doubles that pair's wait (1 s, 2 s, 4 s …) up to the cap (at most half of how long
    # failures are remembered, storage.rate_limits.FAILURE_MEMORY_S, so the wait can build).
    login_free_failures: int = Field(default=3, ge=0, le=100, alias="LOGIN_FREE_FAILURES")
    login_max_delay_s: int = Field(default=900, ge=1, le=1800, alias="LOGIN_MAX_DELAY_S")
    rate_limit_namespace: str = Field(default="", alias="RATE_LIMIT_NAMESPACE", pattern=r"^[A-Za-z0-9_-]{0,40}\Z")
    controller_name: str = Field(default="One Stop VoIP LLC", alias="CONTROLLER_NAME")
    controller_contact: str = Field(default="info@onestopvoip.com", alias="CONTROLLER_CONTACT")
    controller_phone: str = Field(default="+18448800330", alias="CONTROLLER_PHONE")
    jurisdiction: str = Field(default="US", alias="JURISDICTION")
    # Deadlines count business days from the local date of receipt (docs/consent-rules.md, CR-12).
    business_timezone: Annotated[ZoneInfo, BeforeValidator(_time_zone)] = Field(
        default=ZoneInfo("America/New_York"), alias="BUSINESS_TIMEZONE"
    )
    recording_store: Literal["postgres", "directory"] = Field(default="postgres", alias="RECORDING_STORE")
    recording_fetch_timeout_s: float = Field(default=30.0, gt=0, alias="RECORDING_FETCH_TIMEOUT_S")
    recording_retry_base_s: float = Field(default=15.0, gt=0, alias="RECORDING_RETRY_BASE_S")
    recording_max_attempts: int = Field(default=8, ge=1, alias="RECORDING_MAX_ATTEMPTS")
    recording_callback_grace_s: float = Field(default=600.0, gt=0, alias="RECORDING_CALLBACK_GRACE_S")
    # The largest recording kept, in bytes: a body beyond it is cut off and the fetch fails.
    # 50 MiB is about 54 minutes of Twilio's 8 kHz mono WAV.
    recording_max_bytes: int = Field(default=50 * 1024 * 1024, ge=1024, alias="RECORDING_MAX_BYTES")
    # Recordings are sealed at rest (storage/sealed_media.py) with this master key, base64
    # of 32 bytes; or the one in RECORDING_KEY_FILE, whose sibling *.key files are older
    # keys; neither: one is generated under IVR_DATA_DIR/recording-keys. Older keys in
    # RECORDING_OLD_KEYS (comma-separated) only open what they sealed.
    recording_key: Annotated[SecretStr | None, AfterValidator(_recording_key)] = Field(
        default=None, alias="RECORDING_KEY"
    )
    recording_key_file: Annotated[Path | None, AfterValidator(_recording_key_file)] = Field(
        default=None, alias="RECORDING_KEY_FILE"
    )
    recording_old_keys: Annotated[SecretStr | None, AfterValidator(_recording_keys)] = Field(
        default=None, alias="RECORDING_OLD_KEYS"
    )
    flows_dir: Path | None = Field(default=None, alias="IVR_FLOWS_DIR")
    number_flows: Annotated[dict[str, str], BeforeValidator(_number_flows)] = Field(
        default_factory=dict, alias="IVR_NUMBER_FLOWS"
    )
    dev_mode: bool = Field(default=False, alias="IVR_DEV")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", alias="LOG_LEVEL")
    log_format: Literal["json", "console"] | None = Field(default=None, alias="LOG_FORMAT")
    # The reverse proxies in front of the service (docker-compose's nginx): only their
    # X-Forwarded-For names the client, for rate limits and the access log.
    trusted_proxies: Annotated[
        list[ipaddress.IPv4Network | ipaddress.IPv6Network], BeforeValidator(_trusted_proxies)
    ] = Field(default_factory=list, alias="TRUSTED_PROXIES")
    # Off only to measure what the webhook timing costs (bench/webhooks.py); /metrics then 404s.
    metrics_enabled: bool = Field(default=True, alias="METRICS_ENABLED")
    # Set, /metrics answers only `Authorization: Bearer <METRICS_TOKEN>` (Prometheus'
    # `authorization` scrape setting); unset, it is open on the app port like /healthz.
    metrics_token: SecretStr | None = Field(default=None, alias="METRICS_TOKEN")
    # Per process: Postgres's max_connections must cover this times every process of every host.
    pg_pool_size: int = Field(default=10, ge=2, le=500, alias="PG_POOL_SIZE")
    # Signed checkpoints of the ledger (docs/verifying-evidence.md): the Ed25519 seed, base64;
    # or a file holding it; neither: one is generated and kept under IVR_DATA_DIR.
    ledger_signing_key: Annotated[SecretStr | None, AfterValidator(_signing_seed)] = Field(
        default=None, alias="LEDGER_SIGNING_KEY"
    )
    ledger_signing_key_file: Path | None = Field(default=None, alias="LEDGER_SIGNING_KEY_FILE")
    checkpoint_interval_s: float = Field(default=60.0, gt=0, alias="CHECKPOINT_INTERVAL_S")
    checkpoint_dir: Path | None = Field(default=None, alias="CHECKPOINT_DIR")
    # An RFC 3161 time-stamping authority to countersign every checkpoint, and the roots
    # (PEM) its tokens are verified against.
    tsa_url: Annotated[str | None, AfterValidator(_base_url)] = Field(default=None, alias="TSA_URL")
    tsa_ca_file: Path | None = Field(default=None, alias="TSA_CA_FILE")
    # Events to subscribers (docs/integrations.md). True lets subscriptions use plain http
    # and private, loopback or link-local hosts (tests, a lab); checked when a subscription
    # is added and at every delivery, since DNS can change.
    event_allow_private_targets: bool = Field(default=False, alias="EVENT_ALLOW_PRIVATE_TARGETS")
    # The wait after each failed attempt (seconds, comma-separated, each with +-20% jitter):
    # Standard Webhooks' schedule, about three days; a failure after the last is a dead letter.
    event_retry_schedule_s: Annotated[tuple[float, ...], BeforeValidator(_seconds_list)] = Field(
        default=DEFAULT_EVENT_RETRY_SCHEDULE_S, alias="EVENT_RETRY_SCHEDULE_S"
    )
    # Receivers must answer within this (the spec suggests 15 to 30 s).
    event_delivery_timeout_s: float = Field(default=15.0, gt=0, le=60, alias="EVENT_DELIVERY_TIMEOUT_S")
    # How long a worker holds a delivery it is sending: past it, another process takes it up
    # (so it must outlast the timeout, or two would send one attempt at once).
    event_lease_s: float = Field(default=60.0, gt=0, le=3600, alias="EVENT_LEASE_S")
    event_delivery_concurrency: int = Field(default=8, ge=1, le=200, alias="EVENT_DELIVERY_CONCURRENCY")
    # How often an idle worker looks for new events (no NOTIFY: it would serialise commits).
    event_poll_interval_s: float = Field(default=1.0, gt=0, le=60, alias="EVENT_POLL_INTERVAL_S")
    # The delivery worker's own connections, apart from the webhooks' pool.
    event_pool_size: int = Field(default=2, ge=1, le=20, alias="EVENT_POOL_SIZE")
    # After a rotation the old secret signs beside the new one this long.
    event_secret_grace_s: float = Field(default=86_400.0, ge=0, le=30 * 86_400, alias="EVENT_SECRET_GRACE_S")
    # How often each process looks for CPNI approvals deemed since (the window is 30 days:
    # minutes late is nothing; the scan reads every old notice without a decision).
    event_deemed_scan_s: float = Field(default=300.0, gt=0, le=86_400, alias="EVENT_DEEMED_SCAN_S")
    # The same events to NATS JetStream as well (docs/integrations.md), where a deployment
    # runs a broker: unset, nothing is published. The stream is made if missing, with every
    # subject under the prefix; an event goes on <prefix><type>, e.g. consent.events.consent.revoked.
    events_nats_url: Annotated[str | None, _url_with_scheme(("nats", "tls"), "NATS")] = Field(
        default=None, alias="EVENTS_NATS_URL"
    )
    events_nats_stream: str = Field(
        default="CONSENT_EVENTS", pattern=r"\A[A-Za-z0-9_-]{1,64}\Z", alias="EVENTS_NATS_STREAM"
    )
    # Tokens of letters, digits, _ or -, each ending with a dot (no wildcards: it is a subject).
    events_nats_subject_prefix: str = Field(
        default="consent.events.",
        pattern=r"\A(?:[A-Za-z0-9_-]+\.){1,8}\Z",
        alias="EVENTS_NATS_SUBJECT_PREFIX",
    )
    # PINs are hashed with HMAC-SHA256 under this key before scrypt (ivr.access.pins): the
    # key in base64, or a file holding it; neither: one is generated and kept under
    # IVR_DATA_DIR. It is never in the database, so a copied directory gives up no PIN;
    # lose it and no PIN hashed with it matches again: back it up.
    pin_pepper: Annotated[SecretStr | None, AfterValidator(_pin_pepper)] = Field(default=None, alias="PIN_PEPPER")
    pin_pepper_file: Path | None = Field(default=None, alias="PIN_PEPPER_FILE")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("flows_dir")
    @classmethod
    def _flows_dir_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError("must be a directory of flow definitions (*.toml)")
        return value

    @field_validator("recording_key_file")
    @classmethod
    def _one_current_recording_key(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None and info.data.get("recording_key") is not None:
            raise ValueError("set RECORDING_KEY or RECORDING_KEY_FILE, not both (which would seal?)")
        return value

    @field_validator("event_lease_s")
    @classmethod
    def _lease_outlasts_a_delivery(cls, value: float, info: ValidationInfo) -> float:
        timeout = info.data.get("event_delivery_timeout_s")
        if timeout is not None and value <= timeout:
            raise ValueError(f"must be longer than EVENT_DELIVERY_TIMEOUT_S ({timeout})")
        return value

    @field_validator("transfer_streams_per_process")
    @classmethod
    def _room_for_a_token(cls, value: int, info: ValidationInfo) -> int:
        per_token = info.data.get("transfer_streams_per_token")
        if per_token is not None and value < per_token:
            raise ValueError(f"must be at least TRANSFER_STREAMS_PER_TOKEN ({per_token})")
        return value

    @model_validator(mode="after")
    def _twilio_settings_present(self, info: ValidationInfo) -> Settings:
        if info.context and not info.context.get("need_twilio", True):
            return self
        missing = []
        if self.twilio_auth_token is None or not self.twilio_auth_token.get_secret_value():
            missing.append("TWILIO_AUTH_TOKEN")
        if self.public_base_url is None:
            missing.append("PUBLIC_BASE_URL")
        if missing:
            raise ValueError("required (set IVR_DEV=1 for a local development default): " + ", ".join(missing))
        return self

    @property
    def auth_token(self) -> str:
        assert self.twilio_auth_token is not None  # guaranteed by validation
        return self.twilio_auth_token.get_secret_value()

    @property
    def base_url(self) -> str:
        assert self.public_base_url is not None  # guaranteed by validation
        return self.public_base_url

    @property
    def controller(self) -> Controller:
        return Controller(self.controller_name, self.controller_contact, self.controller_phone, self.jurisdiction)

    @property
    def return_destinations(self) -> ReturnDestinations:
        """TRANSFER_RETURN_DESTINATIONS, and the agents' own line (AGENT_TARGET)."""
        return self.transfer_return_destinations.also(self.agent_target)

    @property
    def checkpoints_dir(self) -> Path:
        return self.checkpoint_dir or self.data_dir / "checkpoints"

    @property
    def effective_log_format(self) -> str:
        return self.log_format or ("console" if self.dev_mode else "json")

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, need_twilio: bool = True) -> Settings:
        """Validate ``environ``; raise ConfigError with one line per problem.

        ``need_twilio=False`` is for commands that only touch storage (``ivr migrate``).
        """
        values = {key: value for key, value in environ.items() if value != ""}
        try:
            return cls.model_validate(values, context={"need_twilio": need_twilio})
        except ValidationError as exc:
            raise ConfigError([_describe(error) for error in exc.errors()]) from None


def _describe(error: object) -> str:
    assert isinstance(error, dict)
    names = [str(part) for part in error.get("loc", ())]
    aliases = {name: field.alias or name for name, field in Settings.model_fields.items()}
    where = ", ".join(aliases.get(name, name) for name in names) or "settings"
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"config error: {where}: {message}"
