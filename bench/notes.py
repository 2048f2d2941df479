"""The prose of REPORT.md's summary and diagnosis, written from the numbers of the run.

Each paragraph is included only when the results show what it explains, and quotes them.
"""
from __future__ import annotations

from typing import Any

PTB = "bot gateway (PTB loop + its to_thread pool)"


def _f(v: Any, fmt: str = ".1f", none: str = "—") -> str:
    return none if v is None else format(v, fmt)


def _first_upper(text: str) -> str:
    return text[:1].upper() + text[1:]


def _ms(v: Any) -> str:
    return "—" if v is None else f"{v * 1000:,.0f} ms"


def notes_for(results: dict[str, Any]) -> dict[str, str]:
    sc = {k: v for k, v in results.get("scenarios", {}).items() if "error" not in v}
    summary: list[str] = []
    diag: list[str] = []
    t, lat, inf, tc, fo = (sc.get(k) for k in ("throughput", "latency", "inflight", "telegram_ceiling", "failover"))
    m = results.get("machine", {})
    cpus = m.get("logical_cpus", "?")

    if t:
        h, pj, cpu = t["headline"], t["per_job"], t["cpu_ms_per_job"]
        costs = t.get("component_costs", {})
        summary.append(
            f"**Throughput.** kiebot moves {h['kiebot_jobs_per_s']:.1f} jobs/s end to end, {h['ratio']:.0%} of the "
            f"{h['floor_jobs_per_s']:.1f} jobs/s a plain thread pool does with the same calls (target ≥ 70 %), "
            f"{h['multiple_of_30']:.2f}× Telegram's 30 msg/s (target ≥ 10×). The 10× target is out of reach on "
            f"this {cpus}-CPU machine even for the floor ({h['floor_jobs_per_s'] / 30:.1f}×).")
        tx_b = costs.get("transaction_as_built", {})
        diag.append(
            "**Storage is not the bottleneck.** kiebot's Database keeps its connections: "
            f"{pj['kiebot']['pg_transactions']:.1f} Postgres commits per job against the floor's "
            f"{pj['floor']['pg_transactions']:.1f} for the same 13 transactions, and a `SELECT 1` through it takes "
            f"{_f(tx_b.get('wall_ms'), '.2f')} ms ({_f(tx_b.get('commits_per_tx'))} commit).")
        pb = costs.get("pykka_actor_start_message_stop", {})
        sb, sr = costs.get("sendPhoto_via_bot_sender", {}), costs.get("sendPhoto_via_requests", {})
        th = t.get("thread_cpu_ms_per_job", {})
        fl = th.get("floor", {})
        wi = th.get("kiebot", {})
        total_floor = cpu["floor"]["bench"] + cpu["floor"]["sims"] + cpu["floor"]["postgres"]
        busy = {k: [s["machine_busy_share"] for s in t["segments"] if s["pipeline"] == k] for k in ("floor", "kiebot")}
        diag.append(
            f"**The gap to the floor is the bot gateway's one asyncio thread; the ceiling is CPU.** The machine was "
            f"busy {min(busy['floor']):.0%}–{max(busy['floor']):.0%} of its {cpus} CPUs in the floor's segments and "
            f"{min(busy['kiebot']):.0%}–{max(busy['kiebot']):.0%} in kiebot's: kiebot's own process, one interpreter "
            "holding the GIL, is its limit before the machine is. CPU per job by thread "
            f"group in the pipeline's process (kiebot vs the floor): "
            f"JobActors {_f(wi.get('JobActors'))} ms against the floor's workers {_f(fl.get('floor workers'))} ms "
            "doing the same calls; the HTTP threads storing callbacks "
            f"{_f(wi.get('HTTP request threads (callbacks)'))} against {_f(fl.get('HTTP request threads (callbacks)'))} "
            f"ms; supervisor and leader {_f(wi.get('supervisor + leader'))} ms; and the bot gateway's PTB loop "
            f"**{_f(wi.get(PTB))} ms**, which the floor does not have (it sends with `requests` inside its worker). "
            f"Alone, one sendPhoto costs {_f(sb.get('cpu_ms'), '.2f')} ms of CPU through the bot's sender (PTB, "
            f"FloodControl, httpx, the thread→asyncio bridge) against {_f(sr.get('cpu_ms'), '.2f')} ms with "
            "`requests`, and under load the loop costs more per send; every result of the instance goes through "
            f"that one thread." + _by_level(t) + f" A pykka actor's life (start, one message, stop) is only "
            f"{_f(pb.get('cpu_ms'), '.2f')} ms. "
            "All of it is one interpreter (the GIL): a leader is one process, so more cores help Postgres and the "
            f"simulators but not kiebot's own share. At the floor's {total_floor:.0f} ms of CPU per job across "
            f"processes, 300 jobs/s would need about {300 * total_floor / 1000:.0f} such CPUs and more than one core for "
            "kiebot's process alone; in production KIE's account limit (20 createTask per 10 s) caps one bot at "
            "2 jobs/s anyway.")
    if lat:
        main = lat["runs"][0]
        f = main.get("log_findings", {})
        a = main["callback_sent_to_telegram_s"]
        summary.append(
            f"**Latency.** At a steady {main['rate_offered']:.0f} jobs/s kiebot delivered "
            f"{main['achieved_jobs_per_s']:.1f} jobs/s while the load lasted; callback → Telegram p50 {_ms(a.get('p50'))}, "
            f"p99 {_ms(a.get('p99'))}"
            + (f", {main['duplicate_sends']} duplicate sends" if main.get("duplicate_sends") else "") + ". "
            + _first_upper("; ".join(f"at {r['rate_offered']:.0f}/s ({r['label']}): p50 "
                                     f"{_ms(r['callback_sent_to_telegram_s'].get('p50'))}, p99 "
                                     f"{_ms(r['callback_sent_to_telegram_s'].get('p99'))}" for r in lat["runs"][1:]))
            + ".")
        points = main.get("series") or []
        if points:
            span = points[-1][0] - points[0][0]
            slow = [t_ for t_, ms in points if ms > 100]
            late = [t_ for t_ in slow if t_ >= points[0][0] + 0.85 * span]
            p50 = main["callback_sent_to_telegram_s"].get("p50") or 0.0
            summary[-1] += (f" At {main['rate_offered']:.0f}/s, {len(slow)} of {len(points)} jobs took over 100 ms, "
                            f"{len(late)} of them in the last 15 % of the run (plot): "
                            + ("the queue grew through the run — the instance did not keep up."
                               if p50 > 0.1 else
                               "the instance was close to its capacity and a queue started to build at the end."
                               if len(late) > len(slow) / 2 else "short bursts rather than a growing queue."))
        trouble = f.get("pool_exhausted", 0) + f.get("leader_step_downs", 0) + f.get("actor_failed", 0)
        if not lat.get("headline", {}).get("sustained", True):
            text = (f"**{main['rate_offered']:.0f} jobs/s is beyond this machine's capacity for kiebot** "
                    f"(throughput above: {t['headline']['kiebot_jobs_per_s']:.1f} jobs/s at best), so work queues up "
                    "and latency grows for as long as the load lasts (plot). " if t else
                    f"**{main['rate_offered']:.0f} jobs/s is beyond this machine's capacity for kiebot.** ")
            if trouble:
                text += ("Overload turns into errors: the pool makes a caller wait for a free connection up to "
                         "30 s, then raises, which kiebot maps to `DatabaseUnavailable`; the "
                         f"instance logged {f.get('pool_exhausted', 0):,} such errors and {f.get('actor_failed', 0):,} "
                         "JobActor crashes. ")
                if f.get("leader_step_downs"):
                    text += (f"The leader stepped down {f['leader_step_downs']} time(s) in "
                             f"{lat['setup']['seconds']:.0f} s; every JobActor of the old epoch then loses its fenced "
                             "writes, and a result sent but not yet recorded as `delivered` is re-claimed after "
                             f"`KIEBOT_DELIVERY_GRACE_S` (at_least_once) and sent again ({f.get('reclaimed', 0)} "
                             f"re-claims, {main.get('duplicate_sends', 0)} duplicate results in this run). ")
                text += ("The supervisor gives a job up after three crashes of its actor and sends a failure notice "
                         "instead of the result.")
            diag.append(text)
    if inf:
        h = inf["headline"]
        big = inf["attempts"][0]
        mem = big["memory"]
        summary.append(
            f"**In flight.** {big['jobs']:,} unfinished jobs: the first leader started "
            f"{_f(mem.get('threads_added'), ',.0f')} threads for them at {_f(mem.get('rss_per_job_kb'))} kB of RSS per job; "
            f"{'it works' if big['works'] else 'it broke'} — {big['delivery']['unique_tasks']:,} results, "
            f"{big['delivery']['failure_notices']:,} failure notices, {big['delivery']['duplicates']:,} duplicates"
            + (f", all delivered {big['timings']['deliver_all_s']:.0f} s after every task completed at once "
               f"({big['delivery']['rate_per_s']:.0f} results/s)" if "deliver_all_s" in big["timings"]
               and big["delivery"].get("rate_per_s") else "") + ". "
            f"A new leader adopted all {big['jobs']:,} in {_f(big['timings'].get('first_all_actors_s'))} s "
            "(one query for the rows; JobActors take one of KIEBOT_JOB_SLOTS = 16 work slots per message). "
            f"Largest size that works end to end: {format(h['largest_n_that_works'], ',') if h['largest_n_that_works'] else 'none of those tried'}.")
        keys = ("pool_exhausted", "actor_failed", "leader_step_downs", "reclaimed", "leader_watchdog",
                "tell_to_dead_supervisor")
        broken = [a for a in inf["attempts"] if not a["works"]]
        quiet = not any(v for f in big.get("log_findings", {}).values() for v in f.values() if isinstance(v, int)
                        and v) if big["works"] else False
        if quiet:
            diag.append(
                f"**{big['jobs']:,} jobs in flight stay within bounds.** Each JobActor is a thread "
                f"({_f(mem.get('rss_per_job_kb'))} kB of RSS), but a new leader adopts them from one query and "
                "spreads their first KIE polls over the poll interval, and each message runs in one of 16 work slots "
                "(`KIEBOT_JOB_SLOTS`), given back while the actor waits on Telegram. So when every task completes at "
                "once, at most 16 actors compete for the GIL and the 32 pooled connections, the LeaderActor's lock "
                "check runs on time, and FloodControl keeps at most 16 Bot API requests on the wire while the rest "
                "wait in its queue: no pool errors, watchdog firings, step-downs, re-claims or send errors in "
                "either instance's log. Delivery then runs at the pipeline's own pace "
                f"({_f(big['delivery'].get('rate_per_s'), '.0f')} results/s).")
        if broken:
            def tally(a: dict[str, Any]) -> dict[str, int]:
                return {k: sum(v.get(k, 0) for v in a.get("log_findings", {}).values()) for k in keys}

            works = [a["jobs"] for a in inf["attempts"] if a["works"]]
            text = ("**Thousands of unfinished jobs break one instance: a thread per job in one interpreter.** "
                    "Adoption starts every JobActor at once (their first KIE polls are spread over the poll "
                    "interval); when every task completes, thousands of callbacks arrive together and thousands "
                    "of actors confirm, claim, send and record at once. ")
            if works:
                text += f"With up to {max(works):,} jobs it works cleanly here. "
            for a in broken[:2]:
                f = tally(a)
                parts = [f"{f['pool_exhausted']:,} database-pool errors" if f["pool_exhausted"] else "",
                         f"{f['actor_failed']:,} JobActor crashes" if f["actor_failed"] else "",
                         f"{f['leader_watchdog']:,} leader watchdog firings (\"lock not confirmed for 2.0s\": the "
                         "LeaderActor's lock check did not get to run)" if f["leader_watchdog"] else "",
                         f"{f['leader_step_downs']} leader step-down(s)" if f["leader_step_downs"] else "",
                         f"{f['tell_to_dead_supervisor']:,} JobActors crashing on `tell` to a supervisor that was "
                         "already stopped (`ActorDeadError` in `_finish`)" if f["tell_to_dead_supervisor"] else "",
                         f"{f['reclaimed']:,} deliveries re-claimed from an old epoch" if f["reclaimed"] else ""]
                d = a["delivery"]
                text += (f"At {a['jobs']:,}: " + ", ".join(x for x in parts if x)
                         + f"; {d['unique_tasks']:,} of {a['jobs']:,} results arrived ({d['duplicates']:,} duplicates, "
                           f"{d['failure_notices']:,} failure notices) before delivery stopped progressing. ")
            text += ("With thousands of runnable threads, a thread holding one of the 32 database connections — or "
                     "the LeaderActor due to confirm its lock — waits for the GIL behind the others: connection "
                     "waits run out, and the watchdog steps the leader down, which bumps the epoch; every "
                     "in-flight claim of the old epoch is then re-claimed after the grace period and sent again "
                     "(at_least_once), which is where duplicates come from.")
            if any(tally(a)["leader_step_downs"] for a in broken):
                text += (" When a supervisor stops abnormally, pykka calls `on_failure`, not `on_stop`, so its "
                         "JobActors are not stopped with it: they keep their threads until they lose a race.")
            diag.append(text)
    if tc:
        summary.append(
            f"**Telegram ceiling.** {tc['delivered']:,} results to {tc['setup']['chats']} chats at "
            f"{tc['sustained_per_s']:.2f}/s = {tc['share_of_30']:.1%} of 30/s with {tc['http_429']} 429s "
            "(FloodControl spaces sends at 1/29 s).")
    if fo:
        k, s = fo["SIGKILL"], fo["SIGTERM"]
        summary.append(
            f"**Failover.** Takeover after SIGKILL: median {_ms(k.get('p50'))}, p99 {_ms(k.get('p99'))}; after SIGTERM: "
            f"median {_ms(s.get('p50'))}, p99 {_ms(s.get('p99'))} ({k.get('n', 0)} + {s.get('n', 0)} trials, idle "
            "instances).")
        diag.append(
            "**Failover.** A killed leader's Postgres session ends when its socket closes, which releases the "
            "advisory lock at once; the standby notices on its next attempt (every 0.5 s, "
            "`ACQUIRE_RETRY_INTERVAL_S`), so SIGKILL takeovers spread over 0–0.5 s plus the epoch bump: measured "
            f"{_ms(k.get('min'))}–{_ms(k.get('max'))}. After SIGTERM the leader stops its supervisor and intake, "
            "unlocks and NOTIFYs on its lock connection, and the standby, which waits on that connection's "
            f"socket between attempts, wakes on the NOTIFY: measured {_ms(s.get('min'))}–{_ms(s.get('max'))}.")
    pm = sc.get("payments")
    if pm:
        _payments(pm, summary, diag)
    return {"summary": "\n\n".join(summary), "diagnosis": "\n\n".join(f"{i}. {d}" for i, d in enumerate(diag, 1))}


def _payments(pm: dict[str, Any], summary: list[str], diag: list[str]) -> None:
    """The Stars burst: the summary, and where the answer time and the crediting time go."""
    pc, cr, tm, it, s = pm["pre_checkout"], pm["credits"], pm["timing"], pm["intake"], pm["setup"]
    a, q, k, c = (pc["answered_after_s"], pc["waiting_for_getupdates_s"], pc["inside_kiebot_s"],
                  cr["charged_to_credited_s"])
    o = pc["outcomes"]
    summary.append(
        f"**Stars payments.** {s['users']:,} users paying at once: {pc['answered']:,} pre-checkouts answered in time "
        f"({o.get('expired', 0)} expired), answer p50 {_ms(a.get('p50'))}, p99 {_ms(a.get('p99'))}, max "
        f"{_ms(a.get('max'))}; {cr['credited']:,} of {cr['paid']:,} payments credited, {cr['duplicate_credits']} "
        f"twice, {cr['redeliveries_seen']} of {cr['redeliveries']} redeliveries recognised; all credited "
        f"{_f(tm.get('credited_after_s'))} s after the burst began; ledger check "
        f"{'clean' if pm['ledger']['clean'] else 'NOT clean'}.")
    fl = pm.get("floor") or {}
    fa = fl.get("answered_after_s") or {}
    if (a.get("p99") or 0) >= 1.0:
        diag.append(
            "**A pre-checkout answer missed the 1 s target.** The intake long-polls on the checkout desk's own "
            "thread and loop (`bot/checkout_desk.py`), which answers on 16 threads (`bot/threaded_request.py`). "
            f"Of the answer time, waiting in Telegram's queue for the next getUpdates took p50 {_ms(q.get('p50'))}, "
            f"p99 {_ms(q.get('p99'))} (from one poll to the next {_ms(it['poll_to_next_poll_s'].get('p50'))} median, "
            f"{_f(it.get('updates_per_s'), '.0f')} updates/s), and from that getUpdates to the answer p50 "
            f"{_ms(k.get('p50'))}, p99 {_ms(k.get('p99'))}: the desk shares one interpreter (the GIL) with the bot "
            "loop busy with the payments the answers let through. A floor bot (long polling and 16 answering "
            f"threads with `requests`, no storage, no PTB) on the same burst: p50 {_ms(fa.get('p50'))}, p99 "
            f"{_ms(fa.get('p99'))}.")
    else:
        diag.append(
            "**A pre-checkout answer waits for neither the bot loop nor its connection pool.** The intake long-polls "
            "on the checkout desk's own thread and event loop (`bot/checkout_desk.py`), so the handlers busy on the "
            "bot loop (the payments the answers let through, with their storage calls and \"paid\" messages) never "
            "delay the next getUpdates; each polled batch is stored, and its new pre-checkout queries go to the desk "
            "at once. The desk answers on 16 threads with a keep-alive `requests` session each "
            "(`bot/threaded_request.py`, under PTB's own request and error handling): httpx's pool, whose "
            "bookkeeping scanned every pooled connection on every request, had cost the desk's loop several ms of "
            f"CPU per answer. Waiting in Telegram's queue for the next getUpdates took p50 {_ms(q.get('p50'))}, "
            f"p99 {_ms(q.get('p99'))} (from one poll to the next {_ms(it['poll_to_next_poll_s'].get('p50'))} median, "
            f"{_f(it.get('updates_per_s'), '.0f')} updates/s); from that getUpdates to the answer p50 "
            f"{_ms(k.get('p50'))}, p99 {_ms(k.get('p99'))}. A floor bot (long polling and 16 answering threads with "
            f"`requests`, no storage, no PTB) on the same burst: p50 {_ms(fa.get('p50'))}, p99 {_ms(fa.get('p99'))}.")
    diag.append(
        "**Crediting a payment waits for a chat-lane slot.** `credit_payment` runs as soon as the successful_payment "
        "handler starts, but a handler keeps one of ChatLanes' 256 slots until its \"paid\" message has gone out, "
        "and FloodControl lets messages out at about 29/s: the charge → credited time was p50 "
        f"{_f(c.get('p50'))} s, p99 {_f(c.get('p99'))} s; everything was credited {_f(tm.get('credited_after_s'))} s "
        f"after the burst began, and every update handled after {_f(tm.get('handled_after_s'))} s, when the last of "
        f"the {cr['announced']:,} messages went out ({_f(tm.get('paid_messages_per_s'))}/s).")


def _by_level(t: dict[str, Any]) -> str:
    """How the PTB loop's and the JobActors' CPU per job change with the number of unfinished jobs."""
    from statistics import median

    levels = sorted({s["concurrency"] for s in t["segments"]})
    if len(levels) < 2:
        return ""

    def med(kind: str, c: int, group: str) -> float:
        return median(s["thread_cpu_ms_per_job"].get(group, 0.0) for s in t["segments"]
                      if s["pipeline"] == kind and s["concurrency"] == c)

    lo, hi = levels[0], levels[-1]
    rate = {c: next(r for r in t["by_level"] if r["concurrency"] == c) for c in (lo, hi)}
    return (f" It is also why kiebot slows down with more jobs in flight while the floor does not "
            f"(C = {lo}: {rate[lo]['kiebot_jobs_per_s']:.0f} vs {rate[lo]['floor_jobs_per_s']:.0f} jobs/s; C = {hi}: "
            f"{rate[hi]['kiebot_jobs_per_s']:.0f} vs {rate[hi]['floor_jobs_per_s']:.0f}): per job the PTB loop takes "
            f"{med('kiebot', lo, PTB):.1f} ms at C = {lo} and {med('kiebot', hi, PTB):.1f} ms at C = {hi}, the JobActors "
            f"{med('kiebot', lo, 'JobActors'):.1f} and {med('kiebot', hi, 'JobActors'):.1f} ms, while the floor's workers "
            f"stay at {med('floor', lo, 'floor workers'):.1f} and {med('floor', hi, 'floor workers'):.1f} ms (an ad-hoc "
            "cProfile of the loop, not part of this suite, put much of it in httpx/httpcore's connection-pool "
            "bookkeeping, which scans its connections for every request).")
