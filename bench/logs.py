"""The logs of a benchmark run: an in-process instance logs into a file as `kiebot run` would,
and each instance's log is searched for the signatures of trouble (pool exhaustion, actor
crashes, step-downs, …), counted per run."""
from __future__ import annotations

from pathlib import Path


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
        except Exception:  # noqa: BLE001, S110 - a handler that cannot flush must not stop the run
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
