"""Scenario 1 — pipeline throughput and overhead.

Jobs end to end through the simulators (KIE: zero generation time, no rate limits; Telegram:
no limits) in a closed loop: at most C jobs unfinished, a new one submitted as soon as one is
delivered. The same loop drives kiebot (in-process Runtime, KIEBOT_CLIENT_PACING=off) and the
floor (bench/pipeline.py: the same HTTP calls and Postgres transactions, a plain thread pool).
Segments alternate floor / kiebot at each concurrency, repeated; each segment gets a fresh
database and reset simulators. Reported: jobs/s over the steady window (after a warm-up),
medians over repeats, the ratio kiebot/floor, kiebot ÷ 30 msg/s, and per job the Postgres
transactions (pg_stat_database), HTTP calls (the simulators' logs) and CPU time by process.
"""
from __future__ import annotations

import os
import time
from typing import Any

from bench.cpu import machine_cpu_seconds, postgres_cpu_seconds, process_cpu_seconds
from bench.logs import log_findings, quiet_logging
from bench.pipeline import Driver, FloorPipeline, logged_kiebot_pipeline, take_epoch
from bench.postgres import committed_transactions, fresh_database
from bench.remote_sims import SimHost
from bench.runs import RUNS_DIR
from bench.stats import median, summarize
from bench.thread_cpu import ThreadCpu

NAME = "throughput"
TITLE = "Pipeline throughput and overhead"
TELEGRAM_RATE = 30.0
TARGET_RATIO = 0.70
TARGET_MULTIPLE = 10.0
KINDS = ("floor", "kiebot")


def _cpu(sims: SimHost) -> dict[str, float]:
    busy, total = machine_cpu_seconds()
    return {"bench": process_cpu_seconds(os.getpid()), "sims": sims.cpu_seconds(), "postgres": postgres_cpu_seconds(),
            "machine_busy": busy, "machine_total": total}


def run_segment(kind: str, concurrency: int, sims: SimHost, chats: list[int], warmup: float, window: float,
                tag: str) -> dict[str, Any]:
    url = fresh_database(NAME)
    sims.reset()
    log_path = None
    if kind == "floor":
        quiet_logging()
        pipeline: Any = FloorPipeline(url, sims.env(), chats=chats, workers=concurrency,
                                      epoch=take_epoch(url, "bench-floor"))
    else:
        log_path = RUNS_DIR / f"{NAME}-{kind}-c{concurrency}-{tag}.log"
        pipeline = logged_kiebot_pipeline(url, sims.env(), chats, log_path, f"{NAME}-{tag}")
    pipeline.start()
    time.sleep(0.5)
    tx0 = committed_transactions(url)
    driver = Driver(pipeline)
    cpu0 = _cpu(sims)
    threads = ThreadCpu().start()
    t0 = time.monotonic()
    driver.closed_loop(concurrency, warmup + window)
    t_end = time.monotonic()
    by_thread = threads.stop()
    cpu1 = _cpu(sims)
    rate = driver.rate_between(t0 + warmup, t_end)
    done_in_run = sum(1 for t in driver.finished.values() if t0 <= t < t_end)
    undone = driver.drain(60)
    sends = sims.telegram_calls("sendPhoto")
    creates = sims.kie_calls("createTask")
    records = sims.kie_calls("recordInfo")
    callbacks = sims.kie_callbacks()
    states: dict[str, int] = {}
    if kind != "floor":
        from storage.jobs import counts_by_state
        states = counts_by_state(pipeline.db)
    errors = list(getattr(pipeline, "errors", []))[:5]
    pipeline.stop()
    quiet_logging()
    time.sleep(1.5)              # closed connections flush their statistics
    tx1 = committed_transactions(url)
    jobs = max(1, len(driver.submitted))
    service = [driver.finished[n] - driver.submitted[n] for n in driver.finished]
    cpu_per_job_ms = {k: (cpu1[k] - cpu0[k]) * 1000 / max(1, done_in_run) for k in ("bench", "sims", "postgres")}
    machine_busy = (cpu1["machine_busy"] - cpu0["machine_busy"]) / max(1e-9, cpu1["machine_total"] - cpu0["machine_total"])
    result = {
        "pipeline": kind, "concurrency": concurrency, "repeat": tag, "jobs_per_s": rate,
        "submitted": len(driver.submitted), "finished": len(driver.finished), "unfinished": undone,
        "failed": len(driver.failed), "errors": errors, "job_states": states,
        "service_time_s": summarize(service),
        "per_job": {"pg_transactions": (tx1 - tx0) / jobs, "createTask": len(creates) / jobs,
                    "recordInfo": len(records) / jobs, "callbacks": len(callbacks) / jobs,
                    "sendPhoto": len(sends) / jobs},
        "sendPhoto_errors": sum(1 for c in sends if c["status"] != 200),
        "log_findings": log_findings(log_path) if log_path else {},
        "cpu_ms_per_job": cpu_per_job_ms, "machine_busy_share": machine_busy,
        "thread_cpu_ms_per_job": {k: v * 1000 / max(1, done_in_run) for k, v in sorted(by_thread.items())},
    }
    print(f"    {kind:>6} C={concurrency:<3} {rate:7.1f} jobs/s  (jobs {len(driver.finished)}/{len(driver.submitted)}, "
          f"{result['per_job']['pg_transactions']:.1f} tx/job, cpu ms/job bench {cpu_per_job_ms['bench']:.1f} "
          f"sims {cpu_per_job_ms['sims']:.1f} pg {cpu_per_job_ms['postgres']:.1f}, machine busy {machine_busy:.0%})",
          flush=True)
    return result


def run(quick: bool = False) -> dict[str, Any]:
    chats = list(range(600_001, 600_201))
    levels = [16] if quick else [8, 32]
    repeats = 1 if quick else 2
    warmup, window = (1.0, 3.0) if quick else (2.0, 8.0)
    sims = SimHost.start(chats=chats)
    segments: list[dict[str, Any]] = []
    try:
        costs = component_costs(sims, chats, scale=0.3 if quick else 1.0)
        print("    component costs: " + ", ".join(f"{k} {v['cpu_ms']:.2f} ms cpu / {v['wall_ms']:.2f} ms wall"
                                              for k, v in costs.items()), flush=True)
        for rep in range(repeats):
            for concurrency in levels:
                for kind in KINDS:
                    segments.append(run_segment(kind, concurrency, sims, chats, warmup, window, f"r{rep + 1}"))
    finally:
        sims.stop()
    by_level = []
    for concurrency in levels:
        floor = [s["jobs_per_s"] for s in segments if s["pipeline"] == "floor" and s["concurrency"] == concurrency]
        kiebot = [s["jobs_per_s"] for s in segments if s["pipeline"] == "kiebot" and s["concurrency"] == concurrency]
        by_level.append({"concurrency": concurrency, "floor_jobs_per_s": median(floor),
                         "kiebot_jobs_per_s": median(kiebot), "ratio": median(kiebot) / median(floor),
                         "floor_runs": floor, "kiebot_runs": kiebot})
    best_floor = max(by_level, key=lambda r: r["floor_jobs_per_s"])
    best_kiebot = max(by_level, key=lambda r: r["kiebot_jobs_per_s"])
    ratio = best_kiebot["kiebot_jobs_per_s"] / best_floor["floor_jobs_per_s"]
    multiple = best_kiebot["kiebot_jobs_per_s"] / TELEGRAM_RATE

    def per_job(kind: str, key: str) -> float:
        return median(s["per_job"][key] for s in segments if s["pipeline"] == kind)

    def cpu(kind: str, key: str) -> float:
        return median(s["cpu_ms_per_job"][key] for s in segments if s["pipeline"] == kind)

    lost = sum(s["unfinished"] + s["failed"] for s in segments if s["pipeline"] == "kiebot")
    return {
        "name": NAME, "title": TITLE, "quick": quick,
        "setup": {"levels": levels, "repeats": repeats, "warmup_s": warmup, "window_s": window, "chats": len(chats),
                  "kie_duration_s": 0, "kie_rate_limits": False, "telegram_limits": False,
                  "kiebot_env": {"KIEBOT_CLIENT_PACING": "off", "KIE_CONFIRM_CALLBACKS": "true (default)",
                                 "KIEBOT_POLL_BASE_S": "1.0 (default)", "PUBLIC_URL": "the instance (callbacks on)"}},
        "by_level": by_level, "segments": segments, "component_costs": costs,
        "headline": {"floor_jobs_per_s": best_floor["floor_jobs_per_s"], "floor_concurrency": best_floor["concurrency"],
                     "kiebot_jobs_per_s": best_kiebot["kiebot_jobs_per_s"],
                     "kiebot_concurrency": best_kiebot["concurrency"], "ratio": ratio, "multiple_of_30": multiple,
                     "jobs_lost_or_failed": lost},
        "per_job": {kind: {key: per_job(kind, key) for key in ("pg_transactions", "createTask", "recordInfo",
                                                               "callbacks", "sendPhoto")}
                    for kind in KINDS},
        "cpu_ms_per_job": {kind: {key: cpu(kind, key) for key in ("bench", "sims", "postgres")}
                           for kind in KINDS},
        "thread_cpu_ms_per_job": {kind: _thread_medians([s for s in segments if s["pipeline"] == kind])
                                  for kind in KINDS},
        "targets": [
            {"what": "kiebot ÷ floor throughput", "value": ratio, "target": f"≥ {TARGET_RATIO:.0%}",
             "pass": ratio >= TARGET_RATIO, "format": "percent"},
            {"what": "kiebot throughput ÷ Telegram's 30 msg/s", "value": multiple, "target": f"≥ {TARGET_MULTIPLE:.0f}×",
             "pass": multiple >= TARGET_MULTIPLE, "format": "times"},
            {"what": "jobs lost or failed", "value": lost, "target": "0", "pass": lost == 0, "format": "int"},
        ],
    }


def component_costs(sims: SimHost, chats: list[int], scale: float = 1.0) -> dict[str, Any]:
    """Small measurements that explain the per-job costs: a transaction with kiebot's Database as
    built; a pykka actor's life; one sendPhoto through the bot's sending path and through plain
    requests; one recordInfo through KieClient and through plain requests. CPU is this process's;
    wall is per call, one call at a time."""
    import json

    import pykka
    import requests

    from bot_gateway import BotGateway
    from config.catalogue import load_catalogue
    from config.settings import Settings
    from kie.client import KieClient
    from storage.db import Database
    from telemetry.metrics import Metrics

    out: dict[str, Any] = {}
    me = os.getpid()

    def timed(label: str, fn: Any, n: int) -> None:
        n = max(10, int(n * scale))
        fn()
        c0, w0 = process_cpu_seconds(me), time.monotonic()
        for _ in range(n):
            fn()
        out[label] = {"cpu_ms": (process_cpu_seconds(me) - c0) * 1000 / n, "wall_ms": (time.monotonic() - w0) * 1000 / n}

    url = fresh_database(NAME)
    db = Database(url, application_name="kiebot-bench-probe")
    db.one("ping")
    time.sleep(1.2)
    tx0 = committed_transactions(url)
    timed("transaction_as_built", lambda: db.one("ping"), 300)
    db.close()
    time.sleep(1.5)
    out["transaction_as_built"]["commits_per_tx"] = (committed_transactions(url) - tx0) / (max(10, int(300 * scale)) + 1)

    class Once(pykka.ThreadingActor):
        def on_receive(self, message: Any) -> None:
            self.stop()

    def actor_life() -> None:
        ref = Once.start()
        ref.tell("go")
        ref.actor_stopped.wait(5)

    timed("pykka_actor_start_message_stop", actor_life, 500)

    auth = {"Authorization": f"Bearer {sims.info['kie_key']}"}
    task = requests.post(f"{sims.kie_url}/api/v1/jobs/createTask", headers=auth, timeout=10,
                         json={"model": "z-image", "input": {"prompt": "probe", "aspect_ratio": "1:1"}}).json()["data"]["taskId"]
    time.sleep(0.3)
    record = requests.get(f"{sims.kie_url}/api/v1/jobs/recordInfo", params={"taskId": task}, headers=auth,
                          timeout=10).json()["data"]
    photo = json.loads(record["resultJson"])["resultUrls"][0]
    settings = Settings.from_env({"TELEGRAM_BOT_TOKEN": sims.telegram_token, "TELEGRAM_API_URL": sims.telegram_url,
                                  "KIE_API_KEY": "unused", "KIEBOT_CLIENT_PACING": "off"})
    gateway = BotGateway(settings, Database(url), load_catalogue(), Metrics(), notify_job=lambda job_id: None)
    gateway.start()
    buttons = [[("🔄 Regenerate", "job:regen:1"), ("✏️ Edit prompt", "job:edit:1")],
               [("🖼 Original", "job:orig:1"), ("🔁 Create another", "menu:create")], [("🏠 Menu", "menu:home")]]
    markup = json.dumps({"inline_keyboard": [[{"text": t, "callback_data": d} for t, d in row] for row in buttons]})
    session = requests.Session()
    try:
        timed("sendPhoto_via_bot_sender", lambda: gateway.sender.send_media(chats[0], "photo", photo, "Z-Image: probe",
                                                                            buttons), 100)
        timed("sendPhoto_via_requests", lambda: session.post(
            f"{sims.telegram_url}/bot{sims.telegram_token}/sendPhoto", timeout=10,
            data={"chat_id": chats[0], "photo": photo, "caption": "Z-Image: probe", "reply_markup": markup}).json(), 100)
    finally:
        gateway.stop()
    client = KieClient(sims.kie_url, sims.info["kie_key"], pacing=False)
    timed("recordInfo_via_kie_client", lambda: client.record_info(task), 200)
    timed("recordInfo_via_requests", lambda: session.get(f"{sims.kie_url}/api/v1/jobs/recordInfo",
                                                         params={"taskId": task}, headers=auth, timeout=10).json(), 200)
    return out


def _thread_medians(segments: list[dict[str, Any]]) -> dict[str, float]:
    groups = sorted({g for s in segments for g in s.get("thread_cpu_ms_per_job", {})})
    return {g: median(s.get("thread_cpu_ms_per_job", {}).get(g, 0.0) for s in segments) for g in groups}
