"""Typed settings read from the environment (design.md section 5), validated at start.

`Settings.from_env` collects every problem and raises one `ConfigError` whose lines each say
what is wrong, so an operator fixes them all at once. Secrets are kept out of `repr`.
"""
from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping
from urllib.parse import parse_qs, unquote, urlparse, urlsplit

DEFAULT_LEADER_LOCK_KEY = 7_246_001_001  # int64: the leadership advisory lock
DEFAULT_JOB_SLOTS = 16     # half the database pool (storage.db.POOL_MAX): the rest is for the gateways


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
    delivery_policy: str = "at_least_once"
    database_url: str | None = field(default=None, repr=False)
    data_dir: Path = Path(".kiebot")
    public_url: str | None = None
    bot_mode: str = "polling"
    telegram_webhook_secret: str | None = field(default=None, repr=False)
    kie_webhook_hmac_key: str | None = field(default=None, repr=False)
    http_host: str = "0.0.0.0"
    http_port: int = 8080
    instance_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    admin_ids: frozenset[int] = frozenset()
    log_level: str = "INFO"
    log_format: str = "text"
    leader_lock_key: int = DEFAULT_LEADER_LOCK_KEY
    poll_base_s: float = 1.0
    delivery_grace_s: float = 30.0
    max_active_jobs: int = 1
    job_slots: int = DEFAULT_JOB_SLOTS  # JobActors handling a message at once (actors/work_slots.py)
    client_pacing: bool = True      # KIEBOT_CLIENT_PACING=off: benchmarks against limitless simulators only
    lock_silence_s: float = 15.0    # the server ends a lock session silent this long (a partitioned leader)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, require_secrets: bool = True) -> Settings:
        env = os.environ if env is None else env
        problems: list[str] = []
        get = lambda name, default=None: (env.get(name) or "").strip() or default  # noqa: E731

        token = get("TELEGRAM_BOT_TOKEN", "")
        key = get("KIE_API_KEY", "")
        if require_secrets and not token:
            problems.append("TELEGRAM_BOT_TOKEN is required (the bot token from @BotFather)")
        elif token and ":" not in token:
            problems.append("TELEGRAM_BOT_TOKEN does not look like a bot token (expected <id>:<secret>)")
        if require_secrets and not key:
            problems.append("KIE_API_KEY is required (your key from kie.ai)")

        urls = {name: get(name, default) for name, default in [
            ("TELEGRAM_API_URL", cls.telegram_api_url), ("KIE_API_URL", cls.kie_api_url),
            ("KIE_UPLOAD_URL", cls.kie_upload_url), ("PUBLIC_URL", None)]}
        for name, value in urls.items():
            if value is not None and not _is_http_url(value):
                problems.append(f"{name} must be an http(s) URL, got {value!r}")

        port_text = get("HTTP_PORT") or get("PORT") or "8080"
        port = _parse_int(port_text)
        if port is None or not 0 <= port <= 65535:
            problems.append(f"HTTP_PORT must be a port number 0-65535, got {port_text!r}")
            port = 8080

        policy = get("DELIVERY_POLICY", "at_least_once")
        if policy not in ("at_least_once", "at_most_once"):
            problems.append(f"DELIVERY_POLICY must be at_least_once or at_most_once, got {policy!r}")
        mode = get("BOT_MODE", "polling")
        if mode not in ("polling", "webhook"):
            problems.append(f"BOT_MODE must be polling or webhook, got {mode!r}")
        secret = get("TELEGRAM_WEBHOOK_SECRET")
        if mode == "webhook":
            if not secret:
                problems.append("TELEGRAM_WEBHOOK_SECRET is required when BOT_MODE=webhook")
            if not urls["PUBLIC_URL"]:
                problems.append("PUBLIC_URL is required when BOT_MODE=webhook")
        confirm = get("KIE_CONFIRM_CALLBACKS", "true").lower()
        if confirm not in ("true", "false", "1", "0", "yes", "no"):
            problems.append(f"KIE_CONFIRM_CALLBACKS must be true or false, got {confirm!r}")
        log_format = get("LOG_FORMAT", "text")
        if log_format not in ("text", "json"):
            problems.append(f"LOG_FORMAT must be text or json, got {log_format!r}")
        log_level = get("LOG_LEVEL", "INFO").upper()
        if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            problems.append(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {log_level!r}")
        admin_ids: set[int] = set()
        for part in filter(None, (p.strip() for p in get("ADMIN_IDS", "").split(","))):
            value = _parse_int(part)
            if value is None:
                problems.append(f"ADMIN_IDS must be comma-separated Telegram user ids, got {part!r}")
            else:
                admin_ids.add(value)
        database_url = get("DATABASE_URL")
        if database_url:
            problems.extend(_database_url_problems(database_url))
        lock_key = _parse_int(get("KIEBOT_LEADER_LOCK_KEY", str(DEFAULT_LEADER_LOCK_KEY)))
        if lock_key is None or not -(2**63) <= lock_key < 2**63:
            problems.append("KIEBOT_LEADER_LOCK_KEY must be an int64")
            lock_key = DEFAULT_LEADER_LOCK_KEY
        poll_base = _parse_float(get("KIEBOT_POLL_BASE_S", "1.0"))
        if poll_base is None or poll_base <= 0:
            problems.append("KIEBOT_POLL_BASE_S must be a positive number of seconds")
            poll_base = 1.0
        grace = _parse_float(get("KIEBOT_DELIVERY_GRACE_S", "30"))
        if grace is None or grace < 0:
            problems.append("KIEBOT_DELIVERY_GRACE_S must be a number of seconds >= 0")
            grace = 30.0
        max_active = _parse_int(get("KIEBOT_MAX_ACTIVE_JOBS", "1"))
        if max_active is None or max_active < 1:
            problems.append("KIEBOT_MAX_ACTIVE_JOBS must be a whole number of at least 1")
            max_active = 1
        job_slots = _parse_int(get("KIEBOT_JOB_SLOTS", str(DEFAULT_JOB_SLOTS)))
        if job_slots is None or not 1 <= job_slots <= 1024:
            problems.append("KIEBOT_JOB_SLOTS must be a whole number from 1 to 1024")
            job_slots = DEFAULT_JOB_SLOTS
        silence = _parse_float(get("KIEBOT_LOCK_SILENCE_S", "15"))
        if silence is None or not 1 <= silence <= 600:
            problems.append("KIEBOT_LOCK_SILENCE_S must be a number of seconds from 1 to 600")
            silence = 15.0
        pacing = get("KIEBOT_CLIENT_PACING", "on").lower()
        if pacing not in ("on", "off"):
            problems.append(f"KIEBOT_CLIENT_PACING must be on or off, got {pacing!r}")
        if problems:
            raise ConfigError(problems)
        return cls(
            telegram_bot_token=token, kie_api_key=key,
            telegram_api_url=urls["TELEGRAM_API_URL"].rstrip("/"),
            kie_api_url=urls["KIE_API_URL"].rstrip("/"),
            kie_upload_url=urls["KIE_UPLOAD_URL"].rstrip("/"),
            kie_confirm_callbacks=confirm in ("true", "1", "yes"),
            delivery_policy=policy, database_url=database_url,
            data_dir=Path(get("KIEBOT_DATA_DIR", ".kiebot")),
            public_url=urls["PUBLIC_URL"].rstrip("/") if urls["PUBLIC_URL"] else None,
            bot_mode=mode, telegram_webhook_secret=secret,
            kie_webhook_hmac_key=get("KIE_WEBHOOK_HMAC_KEY"),
            http_host=get("HTTP_HOST", "0.0.0.0"), http_port=port,
            instance_id=get("INSTANCE_ID") or f"{socket.gethostname()}-{os.getpid()}",
            admin_ids=frozenset(admin_ids), log_level=log_level, log_format=log_format,
            leader_lock_key=lock_key, poll_base_s=poll_base, delivery_grace_s=grace, max_active_jobs=max_active,
            job_slots=job_slots, client_pacing=pacing != "off", lock_silence_s=silence)


    def secrets(self) -> list[str]:
        """Every secret this configuration holds, for the log redaction net."""
        found = [self.telegram_bot_token, self.kie_api_key, self.telegram_webhook_secret,
                 self.kie_webhook_hmac_key, *database_passwords(self.database_url)]
        return [s for s in found if s]


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _database_url_problems(url: str) -> list[str]:
    """What is wrong with a DATABASE_URL, in lines that never quote it (it may hold a password)."""
    if not url.startswith(("postgres://", "postgresql://")):
        return ["DATABASE_URL must be a postgresql:// URL"]
    if _BAD_ESCAPE.search(url):
        return ["DATABASE_URL has a % that does not start a %XX escape (write a literal % in the "
                "password as %25)"]
    try:
        urlsplit(url).port
    except ValueError:
        return ["DATABASE_URL has an invalid port"]
    return []


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


def _is_http_url(value: str) -> bool:
    parsed = urlparse(value)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


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
