"""Scenario 5 — failover: takeover time after SIGKILL and after SIGTERM of the leader.

Two `kiebot run` processes (as built, default settings) on a fresh database against the
simulators, idle (no jobs in flight). Per trial: signal the leader, poll the standby's /health
every 5 ms until it reports `"active": true`; takeover = signal → that answer. The old leader's
exit is awaited, a fresh process is started as the new standby, and the next trial begins once
it answers /health. SIGKILL and SIGTERM trials alternate, 20 of each.
"""
from __future__ import annotations

import random
import signal
import time
from typing import Any

import requests

from bench.common import (LOCAL, RUNS_DIR, KiebotProcess, fresh_database, free_port, instance_env, spawn_kiebot,
                          summarize, wait_for)

NAME = "failover"
TITLE = "Failover: takeover after SIGKILL / SIGTERM of the leader"
POLL_S = 0.005


def _health(port: int) -> dict[str, Any] | None:
    try:
        return requests.get(f"http://{LOCAL}:{port}/health", timeout=0.5).json()  # type: ignore[no-any-return]
    except (requests.RequestException, ValueError):
        return None


def run(quick: bool = False) -> dict[str, Any]:
    from sim.kie import KieSim
    from sim.telegram import TelegramSim

    trials = 3 if quick else 20
    rng = random.Random(20)
    url = fresh_database(NAME)
    counter = iter(range(1, 1000))
    samples: dict[str, list[float]] = {"SIGKILL": [], "SIGTERM": []}
    exits: list[float] = []
    epochs: list[int] = []
    problems: list[str] = []
    procs: list[KiebotProcess] = []
    with KieSim() as kie, TelegramSim() as telegram:
        sims = {"kie_url": kie.url, "kie_upload_url": kie.upload_url, "kie_key": kie.api_key,
                "telegram_url": telegram.url, "telegram_token": telegram.token}

        def spawn() -> KiebotProcess:
            name = f"{NAME}-{next(counter)}"
            (RUNS_DIR / f"{name}.log").unlink(missing_ok=True)
            port = free_port()
            proc = spawn_kiebot(name, instance_env(url, port=port, instance_id=name,
                                                   public_url=f"http://{LOCAL}:{port}", **sims))
            procs.append(proc)
            return proc

        try:
            a, b = spawn(), spawn()
            wait_for(lambda: a.health() and b.health(), 60, "both instances to answer /health")
            leader = wait_for(lambda: next((p for p in (a, b) if p.active()), None), 30, "a leader")
            standby = b if leader is a else a
            for trial in range(2 * trials):
                sig = signal.SIGKILL if trial % 2 == 0 else signal.SIGTERM
                wait_for(lambda: (h := standby.health()) is not None and not h["active"], 30, "a passive standby")
                time.sleep(0.3 + rng.random() * 0.5)    # no phase-lock with the standby's 0.5 s retry cycle
                sent = time.monotonic()
                leader.proc.send_signal(sig)
                deadline = sent + 30
                took = None
                while time.monotonic() < deadline:
                    h = _health(standby.port)
                    if h and h.get("active"):
                        took = time.monotonic() - sent
                        epochs.append(int(h.get("epoch") or 0))
                        break
                    time.sleep(POLL_S)
                if took is None:
                    problems.append(f"trial {trial + 1} ({sig.name}): no takeover within 30 s")
                else:
                    samples[sig.name].append(took)
                leader.proc.wait(timeout=30)
                if sig == signal.SIGTERM:
                    exits.append(time.monotonic() - sent)
                print(f"    trial {trial + 1:>2} {sig.name:<7} takeover {took if took is not None else float('nan'):.3f}s",
                      flush=True)
                leader, standby = standby, spawn()
                wait_for(standby.health, 60, "the new standby to answer /health")
        finally:
            for p in procs:
                p.stop(timeout=30)
    kill, term = summarize(samples["SIGKILL"]), summarize(samples["SIGTERM"])
    return {
        "name": NAME, "title": TITLE, "quick": quick,
        "setup": {"trials_each": trials, "health_poll_s": POLL_S, "jobs_in_flight": 0,
                  "kiebot_env": "defaults (leader lock checked every 0.5 s, passive retry every 0.5 s, NOTIFY on resign)"},
        "SIGKILL": kill, "SIGTERM": term, "samples": samples,
        "sigterm_exit_s": summarize(exits), "epochs_seen": epochs, "problems": problems,
        "headline": {"sigkill_p50_s": kill.get("p50"), "sigkill_p99_s": kill.get("p99"), "sigkill_max_s": kill.get("max"),
                     "sigterm_p50_s": term.get("p50"), "sigterm_p99_s": term.get("p99"),
                     "sigterm_max_s": term.get("max")},
        "targets": [
            {"what": "takeover after SIGKILL, p50 / p99", "value": [kill.get("p50"), kill.get("p99")],
             "target": "p99 ≤ 1 s (README: a standby takes over within a second)",
             "pass": bool(kill.get("n")) and kill["p99"] <= 1.0,
             "format": "s_pair"},
            {"what": "takeover after SIGTERM, p50 / p99", "value": [term.get("p50"), term.get("p99")],
             "target": "p99 ≤ 1 s (resign + NOTIFY: at once)",
             "pass": bool(term.get("n")) and term["p99"] <= 1.0,
             "format": "s_pair"},
            {"what": "trials without takeover", "value": len(problems), "target": "0", "pass": not problems,
             "format": "int"},
        ],
    }

