"""What the benchmarks read from a running instance: its memory and threads from
/proc/<pid>/status, and unlabelled samples from its /metrics. Reads only; None or {} when the
instance is gone."""
from __future__ import annotations

import re
from pathlib import Path

import requests

from sim.cluster import LOCAL


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS (kB), VmHWM (kB) and Threads of a live process, from /proc/<pid>/status."""
    out: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for key in ("VmRSS", "VmHWM", "Threads"):
        m = re.search(rf"^{key}:\s+(\d+)", text, flags=re.MULTILINE)
        if m:
            out[key] = int(m.group(1))
    return out


def metric(port: int, name: str, timeout: float = 5.0) -> float | None:
    """One unlabelled sample from an instance's /metrics, or None."""
    try:
        text = requests.get(f"http://{LOCAL}:{port}/metrics", timeout=timeout).text
    except requests.RequestException:
        return None
    m = re.search(rf"^{re.escape(name)} ([0-9.eE+-]+)$", text, flags=re.MULTILINE)
    return float(m.group(1)) if m else None
