"""Scenario 3 — many unfinished jobs in one instance.

One attempt with N jobs:

1. Fresh database; the bench itself takes the leadership lock and an epoch (as a leader would),
   so the two `kiebot run` processes it starts (A and B, PUBLIC_URL = a front door in front of
   both, as in the demo) stay passive. Their resident memory (VmRSS) and threads come from /proc.
2. N jobs are created through the storage code with the bench's epoch: inserted, moved to
   `submitting`, given a KIE task scripted `Fate(outcome="stuck")` (created over KIE's HTTP API
   with the job's callback URL), moved to `submitted`.
3. The bench releases the lock with a resigning leader's NOTIFY: one instance takes over and
   adopts every job (a JobActor — one thread — per job, each given its row from the leader's
   one query). Timed until /metrics says `kiebot_job_actors` = N; then RSS and threads again →
   memory per job. First recordInfo polls are not waited for: each adopted job's first poll is
   spread at random over its poll interval on purpose (up to KIEBOT_POLL_BASE_S × 5 with
   callbacks on = 600 s here), so adoption is not followed by a burst of N recordInfo calls.
4. SIGKILL of that leader: the other takes over; timed until active and until
   `kiebot_job_actors` = N again.
5. Every KIE task is completed (callbacks go through the front door to the survivor); timed
   until every job is final; then exactly-once: one sendPhoto per task, none missing, every job
   `delivered` with its result (not a failure notice).

Every wait is bounded; an attempt that breaks records what broke (instance log signatures,
job states) and goes on to the next phase. The full run makes the 10,000-job attempt, then, if
it broke, looks for the largest N that works (a ladder, stopping at the first failure).
Instances run with KIEBOT_CLIENT_PACING=off (KieClient's 10 recordInfo/s would make the N
confirmations of step 5 take N/10 s) and KIEBOT_POLL_BASE_S=120 so that polling does not swamp
the measurement.
"""
from __future__ import annotations

import concurrent.futures
import signal
import threading
import time
from typing import Any

import requests

from bench.logs import log_findings
from bench.postgres import fresh_database
from bench.probes import metric, proc_status
from bench.runs import run_log
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

NAME = "inflight"
TITLE = "In flight: many unfinished jobs in one instance"
CHATS = 200
TARGET_N = 10_000
POLL_BASE_S = "120"
LADDER_BUDGET_S = 150.0      # a new size starts only before this; the one running then finishes


def counting_front_door(backends: list[str]) -> Any:
    """sim/front_door.FrontDoor that answers 504 (and counts it) when a backend does not answer within
    its 20 s, instead of letting the exception escape into the server's error log."""
    from sim.front_door import FrontDoor

    class Door(FrontDoor):
        timeouts = 0

        def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
            try:
                return super().forward(method, path, headers, body)
            except requests.RequestException:
                Door.timeouts += 1
                return 504, {"Content-Type": "application/json"}, b'{"error": "backend did not answer"}'

    return Door(backends)


class Sampler:
    """Every `interval` s: per live instance job_actors, RSS, threads; and the sendPhoto count."""

    def __init__(self, instances: list[KiebotProcess], telegram: Any, interval: float = 1.0) -> None:
        self.instances, self.telegram, self.interval = instances, telegram, interval
        self.rows: list[dict[str, Any]] = []
        self.marks: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="inflight-sampler")
        self.t0 = time.monotonic()

    def start(self) -> Sampler:
        self.t0 = time.monotonic()
        self._thread.start()
        return self

    def mark(self, what: str) -> None:
        self.marks.append((round(time.monotonic() - self.t0, 2), what))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def peak(self, name: str, key: str) -> float:
        return max((r[name][key] or 0 for r in self.rows if name in r), default=0)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            row: dict[str, Any] = {"t": round(time.monotonic() - self.t0, 2),
                                   "sent": len(self.telegram.calls("sendPhoto"))}
            for inst in self.instances:
                if inst.alive():
                    st = proc_status(inst.proc.pid)
                    row[inst.name] = {"rss_kb": st.get("VmRSS"), "threads": st.get("Threads"),
                                      "job_actors": metric(inst.port, "kiebot_job_actors", timeout=2.0)}
            self.rows.append(row)


def create_jobs(url: str, kie: Any, door_url: str, chats: list[int], n: int, epoch: int) -> list[str]:
    from actors.job_state import JobState as S
    from storage.db import Database
    from storage.jobs import Moved, NewJob, create_job, created, transition

    db = Database(url, application_name="kiebot-bench-inflight")
    local = threading.local()
    auth = {"Authorization": f"Bearer {kie.api_key}"}

    def one(i: int) -> str:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        chat = chats[i % len(chats)]
        job = created(create_job(db, NewJob(request_key=f"inflight:{i}", chat_id=chat, user_id=chat, lang="en",
                                       model="z-image", input={"prompt": f"bench job {i}", "aspect_ratio": "1:1"},
                                       deadline_s=3 * 3600)))
        moved = transition(db, job.id, S.CREATED, S.SUBMITTING, epoch)
        assert isinstance(moved, Moved), f"job {job.id}: {moved}"
        resp = local.session.post(f"{kie.url}/api/v1/jobs/createTask", headers=auth, timeout=30, json={
            "model": "z-image", "input": job.input,
            "callBackUrl": f"{door_url}/kie/callback/{job.id}?token={job.callback_token}"})
        task_id = str(resp.json()["data"]["taskId"])
        moved = transition(db, job.id, S.SUBMITTING, S.SUBMITTED, epoch, kie_task_id=task_id)
        assert isinstance(moved, Moved), f"job {job.id}: {moved}"
        return task_id

    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            return list(pool.map(one, range(n)))
    finally:
        db.close()


def wait_progress(count: Any, target: int, stall_s: float, max_s: float, what: str, interval: float = 0.5) -> float:
    """Wait until count() >= target while it keeps moving: TimeoutError when it has not changed for
    `stall_s` or after `max_s` in all. Returns the seconds waited."""
    started = last_change = time.monotonic()
    last = count()
    while last < target:
        time.sleep(interval)
        now, value = time.monotonic(), count()
        if value != last:
            last, last_change = value, now
        if now - last_change > stall_s:
            raise TimeoutError(f"{what}: stuck at {last:,} of {target:,} for {stall_s:.0f}s")
        if now - started > max_s:
            raise TimeoutError(f"{what}: {last:,} of {target:,} after {max_s:.0f}s")
    return time.monotonic() - started


def _started(inst: KiebotProcess, baseline_threads: int, n: int) -> bool:
    """Every JobActor started: /metrics says so, or (when /metrics is slow — it queries the
    database) the process has N more threads than when it was passive."""
    if proc_status(inst.proc.pid).get("Threads", 0) - baseline_threads >= n:
        return True
    return (metric(inst.port, "kiebot_job_actors", 1.0) or 0) >= n


def _time_adoption(inst: KiebotProcess, baseline_threads: int, n: int, since: float, timeout: float, key: str,
                   phase: str, timings: dict[str, float], problems: list[str]) -> None:
    """timings[key] = seconds from `since` until all n JobActors run on `inst`; a timeout is a problem."""
    try:
        wait_until(lambda: _started(inst, baseline_threads, n), timeout, f"{n} JobActors ({phase})", 0.25)
        timings[key] = time.monotonic() - since
    except TimeoutError as exc:
        problems.append(f"{phase}: {exc}")


def attempt(n: int, *, phase_timeout: float = 45.0, label: str = "") -> dict[str, Any]:
    """One attempt with `n` jobs; returns what was measured and whether it worked."""
    from config.settings import DEFAULT_LEADER_LOCK_KEY
    from sim.kie import KieSim
    from sim.kie_tasks import Fate
    from sim.telegram import TelegramSim
    from storage.db import Database
    from storage.jobs import counts_by_state
    from storage.leader_term import LockConnection

    label = label or f"asbuilt-{n}"
    url = fresh_database(NAME)
    chats = list(range(620_001, 620_001 + CHATS))
    timings: dict[str, float] = {}
    problems: list[str] = []
    memory: dict[str, Any] = {}
    instances: list[KiebotProcess] = []
    states: dict[str, int] = {}
    outcomes: dict[str, int] = {}
    tasks: list[str] = []
    sampler: Sampler | None = None
    print(f"    [{label}] {n} jobs", flush=True)
    with KieSim(default_duration_s=0.0, rate_limits=False, balance="100000000") as kie, TelegramSim() as telegram:
        last = 0
        for chat in chats:
            last = telegram.user_sends(chat, "hi")
        requests.get(f"{telegram.url}/bot{telegram.token}/getUpdates", params={"offset": last + 1, "timeout": 0},
                     timeout=30).raise_for_status()
        ports = [free_port(), free_port()]
        door = counting_front_door([f"http://{LOCAL}:{p}" for p in ports]).start()
        # The bench says nothing on this connection while it creates the jobs (10,000 take longer
        # than the 15 s a silent leader keeps the lock), so it asks the server for an hour:
        # otherwise a standby takes over mid-creation and the bench's own moves are fenced.
        lock = LockConnection(url, DEFAULT_LEADER_LOCK_KEY, application_name="kiebot-bench-leader",
                              silence_s=3600.0)
        try:
            assert lock.try_lock(), "the bench could not take the leadership lock"
            epoch = lock.bump_epoch("bench")
            sims = sim_endpoints(kie, telegram)
            for suffix, port in zip("ab", ports):
                name = f"{NAME}-{label}-{suffix}"
                env = instance_env(url, port=port, instance_id=name, public_url=door.url, **sims,
                                   KIEBOT_CLIENT_PACING="off", KIEBOT_POLL_BASE_S=POLL_BASE_S)
                instances.append(spawn_kiebot(name, env, run_log(name)))
            wait_until(lambda: all(i.health() for i in instances), 60, "both instances to answer /health")
            time.sleep(2.0)
            memory["passive"] = {i.name: proc_status(i.proc.pid) for i in instances}
            kie.script_next(Fate(outcome="stuck"), count=n)
            t = time.monotonic()
            tasks = create_jobs(url, kie, door.url, chats, n, epoch)
            timings["create_jobs_s"] = time.monotonic() - t

            # --- adoption by the first leader ---------------------------------------------------
            sampler = Sampler(instances, telegram).start()
            released = time.monotonic()
            sampler.mark("lock released")
            lock.release_and_notify("bench")
            first = wait_for_leader(instances, 30, interval=0.02)
            timings["first_active_s"] = time.monotonic() - released
            other = next(i for i in instances if i is not first)
            base = {i.name: memory["passive"][i.name].get("Threads", 0) for i in instances}
            _time_adoption(first, base[first.name], n, released, phase_timeout, "first_all_actors_s", "adoption",
                           timings, problems)
            time.sleep(1.0)
            memory["leader"] = proc_status(first.proc.pid)
            memory["leader_job_actors"] = metric(first.port, "kiebot_job_actors", 10.0)
            rss0 = memory["passive"][first.name].get("VmRSS", 0)
            memory["rss_per_job_kb"] = (memory["leader"].get("VmRSS", 0) - rss0) / n
            memory["threads_added"] = memory["leader"].get("Threads", 0) - memory["passive"][first.name].get("Threads", 0)
            print(f"      adoption: active {timings['first_active_s']:.2f}s, {memory['leader_job_actors']} actors "
                  f"({timings.get('first_all_actors_s', float('nan')):.1f}s), RSS {rss0 // 1024} → "
                  f"{memory['leader'].get('VmRSS', 0) // 1024} MiB ({memory['rss_per_job_kb']:.1f} kB/job), threads "
                  f"+{memory['threads_added']}", flush=True)

            # --- SIGKILL, takeover ------------------------------------------------------------------
            sampler.mark("SIGKILL")
            killed = time.monotonic()
            first.proc.send_signal(signal.SIGKILL)
            first.proc.wait(timeout=10)
            wait_until(other.active, 60, "the standby to take over", interval=0.02)
            timings["takeover_active_s"] = time.monotonic() - killed
            _time_adoption(other, base[other.name], n, killed, phase_timeout, "takeover_all_actors_s", "takeover",
                           timings, problems)
            time.sleep(1.0)
            memory["survivor"] = proc_status(other.proc.pid)
            memory["survivor_job_actors"] = metric(other.port, "kiebot_job_actors", 10.0)
            print(f"      SIGKILL: survivor active {timings['takeover_active_s']:.2f}s, {memory['survivor_job_actors']} "
                  f"actors ({timings.get('takeover_all_actors_s', float('nan')):.1f}s), threads "
                  f"{memory['survivor'].get('Threads')}", flush=True)

            # --- complete every task, deliver -------------------------------------------------------
            sampler.mark("tasks completed")
            completed = time.monotonic()
            for task in tasks:
                kie.complete_now(task)
            db = Database(url, application_name="kiebot-bench-inflight-check")
            try:
                def final() -> int:
                    return sum(v for k, v in counts_by_state(db).items()
                               if k in ("delivered", "delivery_unknown", "undeliverable", "cancelled"))
                try:
                    wait_progress(final, n, 30, 900, "every job final", interval=1.0)
                    timings["deliver_all_s"] = time.monotonic() - completed
                except TimeoutError as exc:
                    problems.append(f"delivery: {exc}")
                states = counts_by_state(db)
                with db.tx() as cur:
                    cur.execute("SELECT outcome, count(*) AS n FROM jobs WHERE state = 'delivered' GROUP BY outcome")
                    outcomes = {r["outcome"]: int(r["n"]) for r in cur.fetchall()}
            finally:
                db.close()
            sampler.mark("final")
            memory["survivor_after"] = proc_status(other.proc.pid)
        finally:
            if sampler is not None:
                sampler.stop()
            for inst in instances:
                inst.stop(timeout=60)
            lock.close()
            door.stop()
        sends = [c for c in telegram.calls("sendPhoto") if c.status == 200]
        notices = [c for c in telegram.calls() if c.method in ("sendMessage", "editMessageText") and c.status == 200]
    per_task: dict[str, int] = {}
    for c in sends:
        task = str(c.params.get("photo", "")).rsplit("/", 1)[-1].split("_", 1)[0]
        per_task[task] = per_task.get(task, 0) + 1
    duplicates = sum(v - 1 for v in per_task.values() if v > 1)
    missing = sum(1 for t in tasks if t not in per_task)
    exactly_once = bool(tasks) and duplicates == 0 and missing == 0 and outcomes.get("success", 0) == n
    send_times = sorted(c.at for c in sends)
    findings = {i.name[-1]: log_findings(i.log_path) for i in instances}
    trouble = sum(v for f in findings.values() for k, v in f.items() if k in ("pool_exhausted", "actor_failed",
                                                                              "leader_step_downs"))
    # Works: every result exactly once, nothing stuck, and no pool error, actor crash or leader step-down.
    # Slowness alone (a phase longer than its window) is reported in `problems`, not counted against it.
    works = exactly_once and trouble == 0 and "deliver_all_s" in timings
    result = {
        "label": label, "jobs": n, "works": works,
        "timings": timings, "memory": memory, "job_states": states, "delivered_outcomes": outcomes,
        "problems": problems, "front_door_timeouts": type(door).timeouts,
        "delivery": {"sendPhoto": len(sends), "unique_tasks": len(per_task), "duplicates": duplicates,
                     "missing": missing, "failure_notices": len(notices),
                     "rate_per_s": (len(send_times) - 1) / (send_times[-1] - send_times[0]) if len(send_times) > 1 else None,
                     "exactly_once": exactly_once},
        "log_findings": findings,
        "peak_threads": max((sampler.peak(i.name, "threads") for i in instances), default=0) if sampler else None,
        "series": {"rows": sampler.rows if sampler else [], "marks": sampler.marks if sampler else [],
                   "names": {i.name: i.name[-1] for i in instances}},
    }
    print(f"      delivered {len(per_task)}/{n} results (duplicates {duplicates}, missing {missing}, "
          f"failure notices {len(notices)}) in {timings.get('deliver_all_s', float('nan')):.0f}s; outcomes {outcomes}; "
          f"{'WORKS' if works else 'BROKE'}; findings {findings}", flush=True)
    return result


def derive_from_samples(a: dict[str, Any]) -> None:
    """Fill the 'all JobActors started' times that ran past their wait from the 1-second samples
    (thread count − the passive count ≥ N), marked as such."""
    rows, marks = a["series"]["rows"], {what: t for t, what in a["series"]["marks"]}
    base = {name: st.get("Threads", 0) for name, st in a["memory"].get("passive", {}).items()}
    n = a["jobs"]

    def first_time(after: float, name: str) -> float | None:
        for r in rows:
            if r["t"] >= after and name in r and (r[name].get("threads") or 0) - base.get(name, 0) >= n:
                return r["t"] - after
        return None

    names = list(a["series"]["names"])
    if "first_all_actors_s" not in a["timings"] and "lock released" in marks:
        found = [t for t in (first_time(marks["lock released"], nm) for nm in names) if t is not None]
        if found:
            a["timings"]["first_all_actors_s"] = min(found)
            a["timings"]["first_all_actors_from_samples"] = True
    if "takeover_all_actors_s" not in a["timings"] and "SIGKILL" in marks:
        found = [t for t in (first_time(marks["SIGKILL"], nm) for nm in names) if t is not None]
        if found:
            a["timings"]["takeover_all_actors_s"] = min(found)
            a["timings"]["takeover_all_actors_from_samples"] = True


def run(quick: bool = False) -> dict[str, Any]:
    attempts: list[dict[str, Any]] = []
    if quick:
        attempts.append(attempt(60, phase_timeout=15))
        ladder: list[int] = []
    else:
        attempts.append(attempt(TARGET_N, phase_timeout=45))
        ladder = [400, 1600, 3200, 6400]
    if attempts[0]["works"]:
        ladder = []                                   # the target size works: nothing to look for
    budget_end = time.monotonic() + LADDER_BUDGET_S
    ladder_cut = False
    for n in ladder:
        if time.monotonic() > budget_end:
            ladder_cut = True
            break
        a = attempt(n, phase_timeout=30)
        attempts.append(a)
        if not a["works"]:
            break
    result = {
        "name": NAME, "title": TITLE, "quick": quick,
        "setup": {"chats": CHATS, "instances": 2, "ladder_budget_s": LADDER_BUDGET_S, "kiebot_env": {
            "KIEBOT_CLIENT_PACING": "off", "KIEBOT_POLL_BASE_S": POLL_BASE_S, "KIE_CONFIRM_CALLBACKS": "true (default)",
            "PUBLIC_URL": "front door (sim/front_door.py) in front of both"}},
        "attempts": attempts, "ladder_cut_by_time": ladder_cut,
    }
    result.update(targets_for(result))
    return result


def targets_for(result: dict[str, Any]) -> dict[str, Any]:
    attempts = result["attempts"]
    for a in attempts:
        derive_from_samples(a)
    main = attempts[0]
    largest = main["jobs"] if main["works"] else None
    for a in attempts[1:]:
        if not a["works"]:
            break
        largest = a["jobs"]
    takeover = main["timings"].get("takeover_all_actors_s")
    return {
        "headline": {"target_jobs": main["jobs"], "target_works": main["works"], "largest_n_that_works": largest,
                     "rss_per_job_kb": main["memory"].get("rss_per_job_kb"), "takeover_all_actors_s": takeover,
                     "ladder_cut_by_time": result.get("ladder_cut_by_time", False)},
        "targets": [
            {"what": f"{main['jobs']:,} unfinished jobs in one instance, all delivered exactly once (as built)",
             "value": "works" if main["works"] else "broke", "target": "works", "pass": main["works"], "format": "raw"},
            {"what": "largest N that works end to end (as built)", "value": f"{largest:,}" if largest else "none tried",
             "target": f"{TARGET_N:,}", "pass": (largest or 0) >= TARGET_N, "format": "raw"},
            {"what": f"resident memory per job ({main['jobs']:,} jobs, first leader)",
             "value": main["memory"].get("rss_per_job_kb"), "target": "reported", "pass": None, "format": "kb"},
            {"what": f"SIGKILL of the leader → all {main['jobs']:,} JobActors started on the survivor",
             "value": takeover, "target": "reported", "pass": None if takeover is not None else False, "format": "s"},
        ],
    }
