"""CPU seconds spent by each group of this process's threads (JobActors, supervisor and leader, the
bot gateway, HTTP request threads, …) between two moments, for scenarios whose pipeline runs
in the bench process. Threads that end in between are counted through a hook on Thread.run."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

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
