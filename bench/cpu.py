"""CPU accounting from /proc: one process, the whole machine, the benchmarks' Postgres, and the
load that other people's processes put on the machine during a scenario (it disturbs the
measurements, so it is recorded). Reads only; Linux only."""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

from bench.postgres import postmaster_pid


def _ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """user + system CPU time of a process (and its reaped children), from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / _ticks()


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in first]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return (total - idle) / _ticks(), total / _ticks()


def all_processes() -> dict[int, tuple[int, float]]:
    """pid → (parent pid, CPU seconds of it and of its reaped children) for every process we can read."""
    out: dict[int, tuple[int, float]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(stat.parent.name)] = (int(fields[1]), sum(int(v) for v in fields[11:15]) / _ticks())
    return out


def postgres_cpu_seconds() -> float:
    """CPU seconds of the benchmarks' own Postgres: its postmaster (with the backends it has reaped)
    and its live children."""
    master = postmaster_pid()
    if master is None:
        return math.nan
    return sum(cpu for pid, (ppid, cpu) in all_processes().items() if master in (pid, ppid))


class ForeignLoad:
    """CPU used on this machine by processes that are not the bench's (its children, its Postgres):
    other people's work running at the same time disturbs the measurements, so it is recorded."""

    def _ours(self, procs: dict[int, tuple[int, float]]) -> set[int]:
        roots = {os.getpid()}
        master = postmaster_pid()
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
        return int(fields[7]) / _ticks() if len(fields) > 7 else 0.0

    def start(self) -> ForeignLoad:
        self._t0 = time.monotonic()
        self._busy0, _ = machine_cpu_seconds()
        self._steal0 = self._steal()
        procs = all_processes()
        self._ours0 = {pid: cpu for pid, (_, cpu) in procs.items() if pid in self._ours(procs)}
        return self

    def stop(self) -> dict[str, float]:
        elapsed = time.monotonic() - self._t0
        busy1, _ = machine_cpu_seconds()
        procs = all_processes()
        ours = self._ours(procs)
        # our CPU: our processes alive at the end, each with the children it reaped, minus their start values
        ours_cpu = sum(cpu - self._ours0.get(pid, 0.0) for pid, (_, cpu) in procs.items() if pid in ours)
        machine = busy1 - self._busy0
        foreign = max(0.0, machine - ours_cpu)
        steal = self._steal() - self._steal0
        return {"seconds": elapsed, "machine_busy_cpus": machine / elapsed if elapsed else 0.0,
                "foreign_cpus_upper_bound": foreign / elapsed if elapsed else 0.0,
                "steal_cpus": steal / elapsed if elapsed else 0.0}
