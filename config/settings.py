"""Typed settings read from the environment (design.md section 5), validated at start.

Every variable is one row of `VARIABLES`: its name, the `Settings` field it fills, the parser
that turns its text into a value (or says what is wrong), its default as an operator would
write it, and what it means. `Settings.from_env` reads the rows, collects every problem and
raises one `ConfigError` whose lines each say what is wrong, so an operator fixes them all at
once. The few rules that span variables (webhook mode needs a secret and a public URL) are in
`_cross_checks`. Secrets are kept out of `repr`.
"""
from __future__ import annotations

import enum
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse, urlsplit

DEFAULT_LEADER_LOCK_KEY = 7_246_001_001  # int64: the leadership advisory lock
DEFAULT_JOB_SLOTS = 16     # half the database pool (storage.db.POOL_MAX): the rest is for the gateways
DEFAULT_QUEUE_LENGTH = 5   # a user's generations waiting behind the running ones (bot/launch.py)


class DeliveryPolicy(str, enum.Enum):
    """What to do with a send whose outcome is unknown (DELIVERY_POLICY)."""

    AT_LEAST_ONCE = "at_least_once"     # resend after the grace period
    AT_MOST_ONCE = "at_most_once"       # park as delivery_unknown and alert


class ConfigError(Exception):
    """The environment does not describe a runnable instance; one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Settings:
    telegram_bot_token: str = field(repr=False)
    kie_api_key: str = field(repr=False)
    telegram_api_url: str = "https://api.telegram.org"
    kie_api_url: str = "https://api.kie.ai"
    kie_upload_url: str = "https://kieai.redpandaai.co"
    kie_confirm_callbacks: bool = True
    delivery_policy: DeliveryPolicy = DeliveryPolicy.AT_LEAST_ONCE
    database_url: str | None = field(default=None, repr=False)
    data_dir: Path = Path(".kiebot")
    public_url: str | None = None
    bot_mode: str = "polling"
    telegram_webhook_secret: str | None = field(default=None, repr=False)
    kie_webhook_hmac_key: str | None = field(default=None, repr=False)
    http_host: str = "0.0.0.0"  # noqa: S104 - in a container the gateway must answer on every interface
    http_port: int = 8080
    instance_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    admin_ids: frozenset[int] = frozenset()
    pricing_file: Path | None = None    # None: the price file shipped in config/
    log_level: str = "INFO"
    log_format: str = "text"
    leader_lock_key: int = DEFAULT_LEADER_LOCK_KEY
    poll_base_s: float = 1.0
    delivery_grace_s: float = 30.0
    max_active_jobs: int = 1
    queue_length: int = DEFAULT_QUEUE_LENGTH    # more than max_active_jobs wait, up to this many
    job_slots: int = DEFAULT_JOB_SLOTS  # JobActors handling a message at once (actors/work_slots.py)
    client_pacing: bool = True      # KIEBOT_CLIENT_PACING=off: benchmarks against limitless simulators only
    lock_silence_s: float = 15.0    # the server ends a lock session silent this long (a partitioned leader)
    retention_updates_days: float = 7.0     # processed Telegram updates are deleted after this long
    retention_callbacks_days: float = 7.0   # processed KIE callbacks
    retention_events_days: float = 30.0     # state history of jobs finished this long ago

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, require_secrets: bool = True) -> Settings:
        """The settings in `env` (the process environment by default), or a ConfigError listing
        every problem. `require_secrets=False` (kiebot migrate) lets the bot token and KIE key
        be absent."""
        env = os.environ if env is None else env
        problems: list[str] = []
        values: dict[str, Any] = {}
        for var in VARIABLES:
            text = var.read(env)
            if text is None:
                if var.required and require_secrets:
                    problems.append(f"{var.name} is required ({var.required})")
                continue
            try:
                values[var.field] = var.parse(text)
            except ValueError as exc:
                problems.append(f"{var.name} {exc}")
        problems.extend(_cross_checks(values))
        if problems:
            raise ConfigError(problems)
        # Secrets are the only fields without a default: absent ones are empty (kiebot migrate).
        values.setdefault("telegram_bot_token", "")
        values.setdefault("kie_api_key", "")
        return cls(**values)

    def secrets(self) -> list[str]:
        """Every secret this configuration holds, for the log redaction net."""
        found = [self.telegram_bot_token, self.kie_api_key, self.telegram_webhook_secret,
                 self.kie_webhook_hmac_key, *database_passwords(self.database_url)]
        return [s for s in found if s]


@dataclass(frozen=True)
class Variable:
    """One environment variable: where it goes, how it is read, and what it means."""

    name: str
    field: str                          # the Settings attribute it fills
    parse: Callable[[str], Any]         # text -> value; ValueError("must be ...") when wrong
    default: str | None                 # as an operator would write it; None: unset
    meaning: str
    required: str | None = None         # set: required for `run`, and this says where to get it
    aliases: tuple[str, ...] = ()       # read when `name` is unset (PORT, set by platforms)
    internal: bool = False              # a KIEBOT_* knob, not a design.md section 5 contract
    commands: tuple[str, ...] = ("run",)  # the commands that read it (their --help lists it)

    def read(self, env: Mapping[str, str]) -> str | None:
        """The variable's text (blank counts as unset), else its aliases', else the default."""
        for name in (self.name, *self.aliases):
            text = (env.get(name) or "").strip()
            if text:
                return text
        return self.default


# --- parsers: each returns the value or raises ValueError saying what the text must be -------
def _text(text: str) -> str:
    return text


def _http_url(text: str) -> str:
    parsed = urlparse(text)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"must be an http(s) URL, got {text!r}")
    return text.rstrip("/")


def _choice(*allowed: str, fold: Callable[[str], str] = str.lower) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if fold(text) not in allowed:
            raise ValueError(f"must be {', '.join(allowed[:-1])} or {allowed[-1]}, got {text!r}")
        return fold(text)
    return parse


def _switch(on: tuple[str, ...], off: tuple[str, ...], wording: str) -> Callable[[str], bool]:
    def parse(text: str) -> bool:
        if text.lower() not in on + off:
            raise ValueError(f"must be {wording}, got {text!r}")
        return text.lower() in on
    return parse


def _delivery_policy(text: str) -> DeliveryPolicy:
    try:
        return DeliveryPolicy(text)
    except ValueError:
        raise ValueError(f"must be at_least_once or at_most_once, got {text!r}") from None


def _whole(low: int, high: int, wording: str, *, quote: bool = False) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = _parse_int(text)
        if value is None or not low <= value <= high:
            raise ValueError(f"{wording}, got {text!r}" if quote else wording)
        return value
    return parse


def _seconds(low: float, high: float | None, wording: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = _parse_float(text)
        if value is None or value < low or (high is not None and value > high):
            raise ValueError(wording)
        return value
    return parse


def _positive_seconds(text: str) -> float:
    value = _parse_float(text)
    if value is None or value <= 0:
        raise ValueError("must be a positive number of seconds")
    return value


def _token(text: str) -> str:
    if ":" not in text:
        raise ValueError("does not look like a bot token (expected <id>:<secret>)")
    return text


def _database_url(text: str) -> str:
    """The URL, or what is wrong with it in words that never quote it (it may hold a password)."""
    if not text.startswith(("postgres://", "postgresql://")):
        raise ValueError("must be a postgresql:// URL")
    if _BAD_ESCAPE.search(text):
        raise ValueError("has a % that does not start a %XX escape (write a literal % in the password as %25)")
    try:
        _port = urlsplit(text).port     # reading it is the check: a bad port raises
    except ValueError:
        raise ValueError("has an invalid port") from None
    return text


def _admin_ids(text: str) -> frozenset[int]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in parts if _parse_int(p) is None]
    if bad:
        raise ValueError(f"must be comma-separated Telegram user ids, got {', '.join(map(repr, bad))}")
    return frozenset(int(p) for p in parts)


def _existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise ValueError(f"must name a readable file, got {text!r}")
    return path


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_RUN_AND_MIGRATE = ("run", "migrate")

VARIABLES: tuple[Variable, ...] = (
    Variable("TELEGRAM_BOT_TOKEN", "telegram_bot_token", _token, None, "bot token",
             required="the bot token from @BotFather"),
    Variable("TELEGRAM_API_URL", "telegram_api_url", _http_url, "https://api.telegram.org",
             "Bot API base"),
    Variable("KIE_API_KEY", "kie_api_key", _text, None, "KIE key", required="your key from kie.ai"),
    Variable("KIE_API_URL", "kie_api_url", _http_url, "https://api.kie.ai", "KIE base"),
    Variable("KIE_UPLOAD_URL", "kie_upload_url", _http_url, "https://kieai.redpandaai.co",
             "KIE file-upload base"),
    Variable("KIE_CONFIRM_CALLBACKS", "kie_confirm_callbacks",
             _switch(("true", "1", "yes"), ("false", "0", "no"), "true or false"), "true",
             "confirm a callback's outcome with recordInfo before delivering"),
    Variable("DELIVERY_POLICY", "delivery_policy", _delivery_policy, "at_least_once",
             "a send whose outcome is unknown: at_least_once or at_most_once"),
    Variable("DATABASE_URL", "database_url", _database_url, None,
             "Postgres URL (unset: embedded Postgres in KIEBOT_DATA_DIR)", commands=_RUN_AND_MIGRATE),
    Variable("KIEBOT_DATA_DIR", "data_dir", Path, "./.kiebot", "local state (the embedded Postgres)",
             commands=_RUN_AND_MIGRATE),
    Variable("PUBLIC_URL", "public_url", _http_url, None,
             "public base URL; enables KIE callbacks and webhook mode"),
    Variable("BOT_MODE", "bot_mode", _choice("polling", "webhook", fold=str), "polling", "polling or webhook"),
    Variable("TELEGRAM_WEBHOOK_SECRET", "telegram_webhook_secret", _text, None,
             "secret for X-Telegram-Bot-Api-Secret-Token (webhook mode)"),
    Variable("KIE_WEBHOOK_HMAC_KEY", "kie_webhook_hmac_key", _text, None, "KIE's callback signing key"),
    Variable("HTTP_HOST", "http_host", _text, "0.0.0.0", "where http_gateway listens"),  # noqa: S104 - as above
    Variable("HTTP_PORT", "http_port", _whole(0, 65535, "must be a port number 0-65535", quote=True), "8080",
             "http_gateway's port", aliases=("PORT",)),
    Variable("INSTANCE_ID", "instance_id", _text, None, "name in logs, metrics, health (unset: host-pid)"),
    Variable("ADMIN_IDS", "admin_ids", _admin_ids, None, "comma-separated Telegram user ids"),
    Variable("KIEBOT_MAX_ACTIVE_JOBS", "max_active_jobs",
             _whole(1, 2**31 - 1, "must be a whole number of at least 1"), "1",
             "generations one user may have running at once"),
    Variable("KIEBOT_PRICING", "pricing_file", _existing_file, None,
             "the operator's price file (unset: the shipped one)"),
    Variable("LOG_LEVEL", "log_level",
             _choice("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", fold=str.upper), "INFO", "logging level"),
    Variable("LOG_FORMAT", "log_format", _choice("text", "json", fold=str), "text", "text or json"),
    # Internal knobs (README "Internal knobs"), not part of the design contract.
    Variable("KIEBOT_LEADER_LOCK_KEY", "leader_lock_key", _whole(-(2**63), 2**63 - 1, "must be an int64"),
             str(DEFAULT_LEADER_LOCK_KEY), "the leadership advisory lock key", internal=True),
    Variable("KIEBOT_POLL_BASE_S", "poll_base_s", _positive_seconds, "1.0", "KIE polling pace",
             internal=True),
    Variable("KIEBOT_DELIVERY_GRACE_S", "delivery_grace_s",
             _seconds(0, None, "must be a number of seconds >= 0"), "30",
             "how long an unfinished delivery claim is trusted", internal=True),
    Variable("KIEBOT_JOB_SLOTS", "job_slots", _whole(1, 1024, "must be a whole number from 1 to 1024"),
             str(DEFAULT_JOB_SLOTS), "JobActors handling a message at once", internal=True),
    Variable("KIEBOT_LOCK_SILENCE_S", "lock_silence_s",
             _seconds(1, 600, "must be a number of seconds from 1 to 600"), "15",
             "the database ends a silent leader's lock session after this long", internal=True),
    Variable("KIEBOT_RETENTION_UPDATES_DAYS", "retention_updates_days",
             _seconds(1, None, "must be a number of days >= 1 (Telegram may redeliver for a day)"), "7",
             "processed Telegram updates are deleted after this many days", internal=True),
    Variable("KIEBOT_RETENTION_CALLBACKS_DAYS", "retention_callbacks_days",
             _seconds(0.01, None, "must be a positive number of days"), "7",
             "processed KIE callbacks are deleted after this many days", internal=True),
    Variable("KIEBOT_RETENTION_EVENTS_DAYS", "retention_events_days",
             _seconds(0.01, None, "must be a positive number of days"), "30",
             "the state history of jobs finished this many days ago is deleted", internal=True),
    Variable("KIEBOT_QUEUE_LENGTH", "queue_length", _whole(0, 1000, "must be a whole number from 0 to 1000"),
             str(DEFAULT_QUEUE_LENGTH), "generations one user may have waiting behind the running ones",
             internal=True),
    Variable("KIEBOT_CLIENT_PACING", "client_pacing", _switch(("on",), ("off",), "on or off"), "on",
             "off: no client-side rate limits (benchmarks against simulators only)", internal=True),
)


def _cross_checks(values: Mapping[str, Any]) -> list[str]:
    """Rules that span variables: webhook mode needs its secret and a public URL."""
    if values.get("bot_mode") != "webhook":
        return []
    problems = []
    if not values.get("telegram_webhook_secret"):
        problems.append("TELEGRAM_WEBHOOK_SECRET is required when BOT_MODE=webhook")
    if not values.get("public_url"):
        problems.append("PUBLIC_URL is required when BOT_MODE=webhook")
    return problems


def variables_for(command: str) -> list[Variable]:
    """The variables a command reads, in table order (for its --help)."""
    return [v for v in VARIABLES if command in v.commands]


def database_passwords(url: str | None) -> list[str]:
    """The password in a postgresql:// URL, as written and decoded (user:pass@ or ?password=)."""
    if not url:
        return []
    try:
        parts = urlsplit(url)
        written = [parts.password or "", *parse_qs(parts.query).get("password", [])]
    except ValueError:
        return []
    return sorted({form for pw in written if pw for form in (pw, unquote(pw))}, key=len, reverse=True)


def _parse_int(text: str) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def _parse_float(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None
