"""Scenario — callback → Telegram latency when KIE's callbacks reach the standby, not the leader.

Two in-process instances on one fresh database: a leader (bench/pipeline.py's KiebotPipeline)
and a standby. Behind a load balancer that sends every callback to one instance, that instance
leads only half of the time; the other half its stored callbacks must reach the leader through
Postgres (NOTIFY in the storing transaction, LISTEN on the leader; the 1 s sweep is only the
safety net). The same open loop as the latency scenario runs twice, with the callback URL
(PUBLIC_URL) pointing at the leader, then at the standby; the target is a p50 within 2× of the
leader's. Latency per job = the Telegram simulator's sendPhoto arrival − the KIE simulator's
start of its callback POST (one clock: both simulators run in one process).
"""
from __future__ import annotations

import time
from typing import Any

from bench.logs import log_findings, log_to_file, quiet_logging
from bench.pipeline import Driver, KiebotPipeline
from bench.postgres import fresh_database
from bench.remote_sims import SimHost
from bench.runs import RUNS_DIR
from bench.stats import summarize
from sim.cluster import LOCAL, free_port, instance_env, wait_until

NAME = "standby_callbacks"
TITLE = "Callback → Telegram latency with callbacks sent to the standby"
RATE = 10.0             # well below saturation: the latency itself is measured, not a queue
TARGET_RATIO = 2.0      # the issue: standby p50 within 2× of the leader's


def task_of(url: str) -> str:
    return url.rsplit("/", 1)[-1].split("_", 1)[0]


def photos_sent(sims: SimHost) -> list[dict[str, Any]]:
    return [c for c in sims.telegram_calls("sendPhoto") if c["status"] == 200]


def measure(sims: SimHost, chats: list[int], seconds: float, *, to_standby: bool) -> dict[str, Any]:
    from config.settings import Settings
    from runtime import Runtime

    label = "callbacks to the standby" if to_standby else "callbacks to the leader"
    slug = "standby" if to_standby else "leader"
    url = fresh_database(NAME)
    sims.reset()
    log_path = RUNS_DIR / f"{NAME}-{slug}.log"
    log_path.unlink(missing_ok=True)
    log_to_file(log_path)
    standby_port = free_port()
    extra = {"PUBLIC_URL": f"http://{LOCAL}:{standby_port}"} if to_standby else {}
    pipeline = KiebotPipeline(url, sims.env(), chats=chats, log_name=f"{NAME}-{slug}-leader", extra_env=extra)
    pipeline.start()
    standby = Runtime(Settings.from_env(instance_env(
        url, port=standby_port, instance_id=f"bench-{NAME}-{slug}-standby", **sims.env(),
        public_url=extra.get("PUBLIC_URL", f"http://{LOCAL}:{pipeline.port}"), KIEBOT_CLIENT_PACING="off")), url)
    try:
        standby.start()
        wait_until(lambda: standby.status.db_ok, 30, "the standby to reach the database")
        wait_until(lambda: pipeline.runtime.listener.backend_pid is not None, 30, "the leader to listen")
        driver = Driver(pipeline)
        started = time.monotonic()
        driver.open_loop(RATE, seconds)
        # Done when the Telegram simulator has every result (what the user sees), or never.
        jobs = len(driver.submitted)
        try:
            wait_until(lambda: len(photos_sent(sims)) >= jobs, max(15.0, seconds * 3), "every result sent",
                       interval=0.2)
        except TimeoutError:
            pass    # reported as unfinished below
        drained_after = time.monotonic() - started
        sends = photos_sent(sims)
        unfinished = max(0, jobs - len(sends))
        attempts = sims.kie_callbacks()
    finally:
        standby.stop()
        pipeline.stop()
        quiet_logging()
    first_attempt: dict[str, float] = {}
    for a in attempts:
        start = float(a["at"]) - float(a.get("elapsed_s") or 0.0)
        first_attempt[a["task_id"]] = min(start, first_attempt.get(a["task_id"], start))
    to_port = f":{standby_port}/" if to_standby else f":{pipeline.port}/"
    latencies, before_callback = [], 0
    for call in sends:
        task = task_of(str(call["params"].get("photo", "")))
        if task in first_attempt:
            delta = float(call["at"]) - first_attempt[task]
            if delta < 0:
                before_callback += 1    # a poll got there first: counted, not measured
            else:
                latencies.append(delta)
    result: dict[str, Any] = {
        "label": label, "rate_offered": RATE, "seconds": seconds, "jobs": len(driver.submitted),
        "delivered": len(sends), "unfinished": unfinished, "drained_after_s": drained_after,
        "callbacks_to_that_instance": sum(1 for a in attempts if to_port in str(a.get("url", ""))),
        "callback_attempts": len(attempts), "delivered_before_callback": before_callback,
        "callback_sent_to_telegram_s": summarize(latencies), "log_findings": log_findings(log_path),
    }
    s = result["callback_sent_to_telegram_s"]
    print(f"    {label}: delivered {len(sends)}/{len(driver.submitted)}; callback→send p50 "
          f"{s.get('p50', float('nan')) * 1000:.0f} ms p99 {s.get('p99', float('nan')) * 1000:.0f} ms; "
          f"{result['callbacks_to_that_instance']}/{len(attempts)} callbacks went there; {result['log_findings']}",
          flush=True)
    return result


def run(quick: bool = False) -> dict[str, Any]:
    chats = list(range(620_001, 620_101))
    seconds = 4.0 if quick else 15.0
    sims = SimHost.start(chats=chats)
    try:
        runs = [measure(sims, chats, seconds, to_standby=False), measure(sims, chats, seconds, to_standby=True)]
    finally:
        sims.stop()
    result: dict[str, Any] = {
        "name": NAME, "title": TITLE, "quick": quick,
        "setup": {"rate": RATE, "seconds": seconds, "chats": len(chats), "kie_duration_s": 0,
                  "kiebot_env": {"KIEBOT_CLIENT_PACING": "off", "KIE_CONFIRM_CALLBACKS": "true (default)"}},
        "runs": runs,
    }
    result.update(targets_for(result))
    return result


def targets_for(result: dict[str, Any]) -> dict[str, Any]:
    """The standby's p50 within TARGET_RATIO× the leader's, with every job delivered in both runs."""
    leader, standby = result["runs"]
    p50_leader = leader["callback_sent_to_telegram_s"].get("p50")
    p50_standby = standby["callback_sent_to_telegram_s"].get("p50")
    ratio = p50_standby / p50_leader if p50_leader and p50_standby is not None else float("nan")
    complete = all(r["unfinished"] == 0 and r["delivered"] >= r["jobs"] for r in (leader, standby))
    return {
        "headline": {"leader_p50_ms": (p50_leader or float("nan")) * 1000,
                     "standby_p50_ms": (p50_standby or float("nan")) * 1000, "ratio": ratio},
        "targets": [
            {"what": f"callback → Telegram p50 / p99, callbacks to the leader ({RATE:.0f} jobs/s)",
             "value": [p50_leader, leader["callback_sent_to_telegram_s"].get("p99")],
             "target": "reported", "pass": None, "format": "ms_pair"},
            {"what": f"callback → Telegram p50 / p99, callbacks to the standby ({RATE:.0f} jobs/s)",
             "value": [p50_standby, standby["callback_sent_to_telegram_s"].get("p99")],
             "target": f"p50 within {TARGET_RATIO:.0f}× the leader's", "pass": complete and ratio <= TARGET_RATIO,
             "format": "ms_pair"},
        ],
    }
