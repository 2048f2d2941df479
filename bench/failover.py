"""Scenario 5 — failover: takeover time after SIGKILL and SIGTERM of the leader, and after a
silent partition of its database traffic.

Two `kiebot run` processes (as built, default settings) on a fresh database against the
simulators, idle (no jobs in flight). Per trial: signal the leader, poll the standby's /health
every 5 ms until it reports `"active": true`; takeover = signal → that answer. The old leader's
exit is awaited, a fresh process is started as the new standby, and the next trial begins once
it answers /health. SIGKILL and SIGTERM trials alternate, 20 of each.

Silent partition (5 trials, 2 with --quick, KIEBOT_LOCK_SILENCE_S at its default): per trial a
fresh pair, the leader reaching Postgres through a TCP proxy, the standby directly; the proxy is
frozen (no byte passes, every socket stays open) and takeover = freeze → the standby's /health
says active. Nothing on the wire tells anyone; the server's idle_session_timeout ends it.
"""
from __future__ import annotations

import random
import signal
import time
from typing import Any

import requests

from bench.postgres import fresh_database
from bench.runs import run_log
from bench.stats import summarize
from config.settings import Settings
from sim.cluster import (
    LOCAL,
    KiebotProcess,
    free_port,
    instance_env,
    sim_endpoints,
    spawn_kiebot,
    wait_for_leader,
    wait_until,
)

SILENCE_S = Settings.lock_silence_s     # the default: these trials set no knob

NAME = "failover"
TITLE = "Failover: takeover after SIGKILL / SIGTERM of the leader"
POLL_S = 0.005
PARTITION_TRIALS = 5
PARTITION = "silent partition"


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
        sims = sim_endpoints(kie, telegram)

        def spawn() -> KiebotProcess:
            name = f"{NAME}-{next(counter)}"
            port = free_port()
            proc = spawn_kiebot(name, instance_env(url, port=port, instance_id=name,
                                                   public_url=f"http://{LOCAL}:{port}", **sims), run_log(name))
            procs.append(proc)
            return proc

        try:
            a, b = spawn(), spawn()
            wait_until(lambda: a.health() and b.health(), 60, "both instances to answer /health")
            leader = wait_for_leader((a, b), 30)
            standby = b if leader is a else a
            for trial in range(2 * trials):
                sig = signal.SIGKILL if trial % 2 == 0 else signal.SIGTERM
                wait_until(lambda: (h := standby.health()) is not None and not h["active"], 30, "a passive standby")
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
                wait_until(standby.health, 60, "the new standby to answer /health")
        finally:
            for p in procs:
                p.stop(timeout=30)
    samples[PARTITION] = run_partition(2 if quick else PARTITION_TRIALS, problems)
    kill, term = summarize(samples["SIGKILL"]), summarize(samples["SIGTERM"])
    part = summarize(samples[PARTITION])
    return {
        "name": NAME, "title": TITLE, "quick": quick,
        "setup": {"trials_each": trials, "health_poll_s": POLL_S, "jobs_in_flight": 0,
                  "kiebot_env": "defaults (leader lock checked every 0.5 s, passive retry every 0.5 s, NOTIFY on resign)"},
        "SIGKILL": kill, "SIGTERM": term, PARTITION: part, "samples": samples,
        "sigterm_exit_s": summarize(exits), "epochs_seen": epochs, "problems": problems,
        "headline": {"sigkill_p50_s": kill.get("p50"), "sigkill_p99_s": kill.get("p99"), "sigkill_max_s": kill.get("max"),
                     "sigterm_p50_s": term.get("p50"), "sigterm_p99_s": term.get("p99"),
                     "sigterm_max_s": term.get("max"), "partition_p50_s": part.get("p50"),
                     "partition_p99_s": part.get("p99")},
        "targets": [
            {"what": "takeover after SIGKILL, p50 / p99", "value": [kill.get("p50"), kill.get("p99")],
             "target": "p99 ≤ 1 s (README: a standby takes over within a second)",
             "pass": bool(kill.get("n")) and kill["p99"] <= 1.0,
             "format": "s_pair"},
            {"what": "takeover after SIGTERM, p50 / p99", "value": [term.get("p50"), term.get("p99")],
             "target": "p99 ≤ 1 s (resign + NOTIFY: at once)",
             "pass": bool(term.get("n")) and term["p99"] <= 1.0,
             "format": "s_pair"},
            {"what": "takeover after a silent partition of the leader, p50 / p99", "value": [part.get("p50"), part.get("p99")],
             "target": f"p99 ≤ 30 s (the server ends a lock session silent for KIEBOT_LOCK_SILENCE_S = {SILENCE_S:g} s)",
             "pass": bool(part.get("n")) and part["p99"] <= 30.0,
             "format": "s_pair"},
            {"what": "trials without takeover", "value": len(problems), "target": "0", "pass": not problems,
             "format": "int"},
        ],
    }



def run_partition(trials: int, problems: list[str]) -> list[float]:
    """Seconds from freezing the leader's database traffic to the standby reporting active."""
    from sim.kie import KieSim
    from sim.telegram import TelegramSim
    from tests.support.tcp_proxy import PgProxy  # the tests' proxy: one freeze, not a second copy

    url = fresh_database(f"{NAME}_partition")
    rng = random.Random(21)
    took_s: list[float] = []
    with KieSim() as kie, TelegramSim() as telegram:
        sims = sim_endpoints(kie, telegram)
        for trial in range(trials):
            proxy = PgProxy(url)
            pair: list[KiebotProcess] = []
            try:
                for role, db_url in (("leader", proxy.url), ("standby", url)):
                    name, port = f"{NAME}-partition-{trial + 1}-{role}", free_port()
                    pair.append(spawn_kiebot(name, instance_env(db_url, port=port, instance_id=name,
                                                                public_url=None, **sims), run_log(name)))
                    if role == "leader":
                        wait_until(pair[0].active, 60, "the proxied instance to lead")
                leader, standby = pair
                wait_until(lambda: (h := standby.health()) is not None and not h["active"], 60, "a passive standby")
                time.sleep(0.3 + rng.random() * 0.5)    # no phase-lock with the 0.5 s lock cycles
                sent = time.monotonic()
                proxy.freeze()
                took = _seconds_until_active(standby, sent, timeout=120)
                if took is None:
                    problems.append(f"partition trial {trial + 1}: no takeover within 120 s")
                else:
                    took_s.append(took)
                print(f"    trial {trial + 1:>2} partition takeover {took if took is not None else float('nan'):.3f}s",
                      flush=True)
            finally:
                proxy.thaw()
                for proc in pair:
                    proc.stop(timeout=30)
                proxy.close()
    return took_s


def _seconds_until_active(proc: KiebotProcess, since: float, timeout: float) -> float | None:
    """Seconds from `since` (monotonic) to `proc` reporting active, polling every POLL_S; None
    if it does not within `timeout`."""
    while time.monotonic() < since + timeout:
        h = _health(proc.port)
        if h and h.get("active"):
            return time.monotonic() - since
        time.sleep(POLL_S)
    return None
