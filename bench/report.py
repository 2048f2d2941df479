"""REPORT.md and the SVG plots, from results.json's content."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench import svg


def _num(v: Any, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if isinstance(v, (int,)) and not isinstance(v, bool):
        return f"{v:,}"
    return f"{v:,.{digits}f}"


def _ms(v: Any) -> str:
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v * 1000:,.0f} ms"


def _s(v: Any) -> str:
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.3f} s"


def fmt_value(t: dict[str, Any]) -> str:
    v, f = t.get("value"), t.get("format")
    if f == "percent":
        return "—" if v is None else f"{v:.1%}"
    if f == "times":
        return "—" if v is None else f"{v:.2f}×"
    if f == "int":
        return _num(v)
    if f == "rate":
        return "—" if v is None else f"{v:.1f} jobs/s"
    if f == "ms_pair":
        return f"{_ms(v[0])} / {_ms(v[1])}" if v else "—"
    if f == "s_pair":
        return f"{_s(v[0])} / {_s(v[1])}" if v else "—"
    if f == "kb":
        return "—" if v is None else f"{v:.1f} kB"
    if f == "s":
        return "—" if v is None else f"{v:.1f} s"
    return "—" if v is None else str(v)


def verdict(p: Any) -> str:
    return "**pass**" if p is True else ("**FAIL**" if p is False else "info")


# ----------------------------------------------------------------------------- plots

def make_plots(results: dict[str, Any], plots: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    sc = results.get("scenarios", {})
    t = sc.get("throughput")
    if t and "by_level" in t:
        levels = [f"C = {r['concurrency']}" for r in t["by_level"]]
        series = [("floor (plain thread pool)", [r["floor_jobs_per_s"] for r in t["by_level"]]),
                  ("kiebot as built", [r["kiebot_jobs_per_s"] for r in t["by_level"]])]
        out["throughput"] = svg.bar_chart(plots / "throughput.svg", "Jobs/s end to end (median of repeats)", levels,
                                          series, x_label="unfinished jobs at a time (closed loop)", y_label="jobs/s",
                                          hlines=[(30, "Telegram 30 msg/s"), (300, "target 10× = 300 jobs/s")]).name
    lat = sc.get("latency")
    if lat and "runs" in lat:
        series = [(f"{r['label']} @ {r['rate_offered']:.0f}/s", [(x, max(y, 0.1)) for x, y in r["series"]])
                  for r in lat["runs"]]
        out["latency"] = svg.line_chart(plots / "latency.svg", "KIE callback sent → sendPhoto at Telegram, per job",
                                        series, x_label="seconds since the first result", y_label="latency, ms (log)",
                                        log_y=True, scatter=True).name
    inf = sc.get("inflight")
    if inf and "attempts" in inf:
        for a in inf["attempts"]:
            if a["jobs"] < 5000:
                continue
            rows = a["series"]["rows"]
            series = []
            for name, short in a["series"]["names"].items():
                pts = [(r["t"], r[name]["threads"]) for r in rows if name in r and r[name]["threads"] is not None]
                series.append((f"instance {short}: threads", pts, "line"))
                pts = [(r["t"], r[name]["job_actors"]) for r in rows if name in r and r[name]["job_actors"] is not None]
                series.append((f"instance {short}: kiebot_job_actors (when /metrics answered)", pts, "dot"))
            series.append(("results delivered (sendPhoto)", [(r["t"], r["sent"]) for r in rows], "line"))
            key = f"inflight_{a['label']}"
            out[key] = svg.line_chart(plots / f"{key}.svg", f"{a['jobs']:,} jobs in flight, as built", series,
                                      x_label="seconds since the bench released the lock", y_label="count",
                                      vlines=[(t_, what) for t_, what in a["series"]["marks"]],
                                      hlines=[(a["jobs"], f"{a['jobs']:,} jobs")]).name
            series = []
            for name, short in a["series"]["names"].items():
                pts = [(r["t"], r[name]["rss_kb"] / 1024) for r in rows if name in r and r[name]["rss_kb"]]
                series.append((f"instance {short}: VmRSS (MiB)", pts))
            out[key + "_rss"] = svg.line_chart(plots / f"{key}_rss.svg", f"Resident memory, {a['jobs']:,} jobs, as built",
                                               series,
                                               x_label="seconds since the bench released the lock", y_label="MiB",
                                               vlines=[(t_, what) for t_, what in a["series"]["marks"]]).name
    tc = sc.get("telegram_ceiling")
    if tc and "series" in tc:
        out["telegram_ceiling"] = svg.line_chart(
            plots / "telegram_ceiling.svg", "Results sent per second through FloodControl (limit-enforcing sim)",
            [("sends in that second", [(float(s), float(n)) for s, n in tc["series"]])],
            x_label="second of the run", y_label="messages", hlines=[(30, "Telegram: 30/s")], y_min=0,
            y_max=35).name
    fo = sc.get("failover")
    if fo and "samples" in fo:
        series = [(name, [(float(i + 1), v * 1000) for i, v in enumerate(sorted(vals))])
                  for name, vals in fo["samples"].items()
                  if name != "silent partition"]      # seconds, not ms: it would flatten the others
        out["failover"] = svg.line_chart(plots / "failover.svg", "Takeover time per trial (sorted)", series,
                                         x_label="trial (sorted by takeover time)", y_label="ms",
                                         scatter=False, y_min=0).name
    return out


# ----------------------------------------------------------------------------- the report

def write_report(results: dict[str, Any], path: Path, plots: dict[str, str], plots_rel: str) -> None:
    lines: list[str] = []
    add = lines.append
    run = results.get("run", {})
    m = results.get("machine", {})
    quick = run.get("quick")
    add("# kiebot benchmarks")
    add("")
    if quick:
        add("> **Quick smoke run** (`--quick`): small sizes, not the numbers to quote.")
        add("")
    add(f"Run `{run.get('command', '.venv/bin/python -m bench')}` on {run.get('started_at', '?')} "
        f"(took {run.get('duration_s', 0) / 60:.1f} min). Raw numbers: [results.json](results.json); "
        f"plots in [{plots_rel}/]({plots_rel}/). How to run and what each scenario does: [README.md](README.md).")
    add("")
    code = results.get("code", {})
    if code:
        add(f"Code measured: kiebot's source (actors, bot, cli, config, faults, kie, sim, storage, telemetry and the "
            f"top-level modules; {code.get('files')} files) hashes to `{code.get('sha256')}`, newest change "
            f"{code.get('newest_change')}."
            + (f" **It changed during the run** (to `{code['changed_during_run']['sha256']}`); scenarios run after "
               f"{code['changed_during_run']['newest_change']} measured the newer code." if code.get("changed_during_run") else ""))
        add("")
    add("## Machine")
    add("")
    add("| | |")
    add("|---|---|")
    add(f"| CPU | {m.get('cpu_model')} — {m.get('logical_cpus')} logical CPUs ({m.get('usable_cpus')} usable) |")
    add(f"| memory | {m.get('memory_gib')} GiB |")
    add(f"| OS | {m.get('kernel')} |")
    add(f"| Python | {m.get('python')} |")
    add(f"| Postgres | {m.get('postgres')}; " + ", ".join(f"{k}={v}" for k, v in (m.get('postgres_settings') or {}).items()) + " |")
    add("| libraries | " + ", ".join(f"{k} {v}" for k, v in (m.get('libraries') or {}).items()) + " |")
    add("")
    add("Everything runs on this one machine: Postgres, the simulators, the instances and the load, so they share "
        "its CPUs. Simulators and instances talk over 127.0.0.1 only.")
    add("")
    loads = {n: s_.get("machine_load", {}) for n, s_ in results.get("scenarios", {}).items()}
    if loads:
        add("Other processes on the machine during each scenario (CPUs busy with work that is not the "
            "benchmark's — an upper bound): " + ", ".join(
                f"{n} {v.get('foreign_cpus_upper_bound', 0):.2f}" for n, v in loads.items() if v) + "."
            + (" CPU time stolen by the hypervisor: " + ", ".join(
                f"{n} {v['steal_cpus']:.2f}" for n, v in loads.items() if v and "steal_cpus" in v) + " CPUs."
               if any("steal_cpus" in v for v in loads.values() if v) else ""))
        add("")
    add("## Summary")
    add("")
    add("| scenario | measure | result | target | verdict |")
    add("|---|---|---|---|---|")
    for name, sc in results.get("scenarios", {}).items():
        if "error" in sc:
            add(f"| {sc.get('title', name)} | — | scenario crashed: `{sc['error'].splitlines()[-1]}` | — | **FAIL** |")
            continue
        for t in sc.get("targets", []):
            add(f"| {sc['title']} | {t['what']} | {fmt_value(t)} | {t['target']} | {verdict(t.get('pass'))} |")
    add("")
    notes = results.get("notes", {})
    if notes.get("summary"):
        add(notes["summary"])
        add("")
    sc = results.get("scenarios", {})
    if "throughput" in sc and "error" not in sc["throughput"]:
        _throughput(add, sc["throughput"], plots, plots_rel)
    if "latency" in sc and "error" not in sc["latency"]:
        _latency(add, sc["latency"], plots, plots_rel)
    if "standby_callbacks" in sc and "error" not in sc["standby_callbacks"]:
        _standby_callbacks(add, sc["standby_callbacks"])
    if "inflight" in sc and "error" not in sc["inflight"]:
        _inflight(add, sc["inflight"], plots, plots_rel)
    if "telegram_ceiling" in sc and "error" not in sc["telegram_ceiling"]:
        _ceiling(add, sc["telegram_ceiling"], plots, plots_rel)
    if "failover" in sc and "error" not in sc["failover"]:
        _failover(add, sc["failover"], plots, plots_rel)
    if "payments" in sc and "error" not in sc["payments"]:
        _payments(add, sc["payments"])
    for name, s in sc.items():
        if "error" in s:
            add(f"## {s.get('title', name)} — crashed")
            add("")
            add("```")
            add(s["error"].strip()[-3000:])
            add("```")
            add("")
    if notes.get("diagnosis"):
        add("## Diagnosis")
        add("")
        add(notes["diagnosis"])
        add("")
    add("## What was changed to measure")
    add("")
    add("- One knob was added to kiebot: `KIEBOT_CLIENT_PACING=off` (default `on`; `config/settings.py`, "
        "test in `tests/unit/test_settings.py`). It lifts kiebot's own pacing of outbound calls — KieClient's "
        "sliding windows (20 createTask / 10 s, 10 recordInfo / s) and FloodControl's spacing of sends (1/s per "
        "chat, ~29/s per bot); a 429's `retry_after` is still obeyed. The throughput, latency and in-flight "
        "scenarios use it against simulators without limits, because with pacing on the pipeline cannot go "
        "faster than KIE's account limit of 2 createTask/s. The Telegram ceiling and failover scenarios run "
        "with pacing on, as shipped.")
    add("- Jobs in the throughput and latency scenarios bypass the Telegram conversation: they are inserted "
        "with `storage.jobs.create_job` and the supervisor is told with the runtime's `_to_supervisor_job`, "
        "as the dialogue does after its own insert (no progress message is sent or edited).")
    add("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _img(add: Any, plots: dict[str, str], key: str, rel: str, alt: str) -> None:
    if key in plots:
        add(f"![{alt}]({rel}/{plots[key]})")
        add("")


def _throughput(add: Any, t: dict[str, Any], plots: dict[str, str], rel: str) -> None:
    s = t["setup"]
    h = t["headline"]
    add(f"## 1. {t['title']}")
    add("")
    add(f"Closed loop: at most C jobs unfinished; a new job is submitted when one is delivered. KIE simulator at "
        f"zero generation time without rate limits, Telegram simulator without limits, both in their own process. "
        f"Callbacks on, confirmed with recordInfo (default). Each segment: fresh database, {s['warmup_s']:.0f} s "
        f"warm-up, {s['window_s']:.0f} s measured; pipelines alternate; {s['repeats']} "
        f"{'repeat' if s['repeats'] == 1 else 'repeats, medians shown'}.")
    add("")
    add("| C | floor jobs/s | kiebot jobs/s | kiebot ÷ floor |")
    add("|---|---|---|---|")
    for r in t["by_level"]:
        add(f"| {r['concurrency']} | {r['floor_jobs_per_s']:.1f} | {r['kiebot_jobs_per_s']:.1f} | {r['ratio']:.1%} |")
    add("")
    add(f"Best of each: floor {h['floor_jobs_per_s']:.1f} jobs/s, kiebot {h['kiebot_jobs_per_s']:.1f} jobs/s → "
        f"**{h['ratio']:.1%} of the floor**, **{h['multiple_of_30']:.2f}× Telegram's 30 msg/s** "
        f"(the floor itself: {h['floor_jobs_per_s'] / 30:.2f}×).")
    add("")
    add("Per job (medians over segments):")
    add("")
    kinds = [k for k in ("floor", "kiebot") if k in t["per_job"]]
    add("| | " + " | ".join(kinds) + " |")
    add("|---|" + "---|" * len(kinds))
    labels = {"pg_transactions": "Postgres commits (pg_stat_database.xact_commit)", "createTask": "createTask calls",
              "recordInfo": "recordInfo calls", "callbacks": "KIE callback POSTs", "sendPhoto": "sendPhoto calls"}
    for key, label in labels.items():
        add(f"| {label} | " + " | ".join(f"{t['per_job'][k][key]:.2f}" for k in kinds) + " |")
    for key, label in (("bench", "CPU ms in the pipeline's process"), ("sims", "CPU ms in the simulators' process"),
                       ("postgres", "CPU ms in live Postgres backends")):
        add(f"| {label} | " + " | ".join(f"{t['cpu_ms_per_job'][k][key]:.1f}" for k in kinds) + " |")
    add("")
    th = t.get("thread_cpu_ms_per_job", {})
    if th:
        groups = sorted({g for k in kinds for g in th.get(k, {})})
        add("CPU ms per job inside the pipeline's process, by thread group (from /proc/self/task and the threads' "
            "own clocks):")
        add("")
        add("| thread group | " + " | ".join(kinds) + " |")
        add("|---|" + "---|" * len(kinds))
        for g in groups:
            add(f"| {g} | " + " | ".join(_num(th.get(k, {}).get(g), 1) if g in th.get(k, {}) else "—" for k in kinds) + " |")
        add("")
        c = t.get("component_costs", {})
        if c:
            add("Single operations, one at a time (CPU of the bench process / wall time per operation):")
            add("")
            add("| operation | CPU ms | wall ms |")
            add("|---|---|---|")
            for k, v in c.items():
                extra = f" ({v['commits_per_tx']:.1f} commits each)" if "commits_per_tx" in v else ""
                add(f"| {k.replace('_', ' ')}{extra} | {v['cpu_ms']:.2f} | {v['wall_ms']:.2f} |")
            add("")
    add("Postgres CPU: the benchmarks' own server (postmaster, its live backends and the ones it has reaped).")
    add("")
    _img(add, plots, "throughput", rel, "throughput")


def _latency(add: Any, lat: dict[str, Any], plots: dict[str, str], rel: str) -> None:
    add(f"## 2. {lat['title']}")
    add("")
    add(f"Open loop: jobs submitted at a steady rate for {lat['setup']['seconds']:.0f} s into an in-process "
        "instance (callbacks on, confirmed with recordInfo); latency per job = the Telegram simulator's arrival of "
        "its sendPhoto − the KIE simulator's start of its callback POST (both stamped with time.time() in one "
        "process). The cross-check starts at the instance's own receipt (`callback_inbox.received_at`).")
    add("")
    add("| run | offered | achieved during offer | delivered | last one after the load ended | callback→send p50 / p99 | "
        "stored→send p50 / p99 | created→delivered p50 / p99 | duplicates | pool errors | leader step-downs |")
    add("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in lat["runs"]:
        a, b, c = r["callback_sent_to_telegram_s"], r["callback_stored_to_telegram_s"], r["created_to_delivered_s"]
        f = r.get("log_findings", {})
        add(f"| {r['label']} | {r['rate_offered']:.0f}/s | {r['achieved_jobs_per_s']:.1f}/s | "
            f"{r['delivered']}/{r['jobs']} | {max(0.0, r['drained_after_s'] - r['seconds']):.1f} s | "
            f"{_ms(a.get('p50'))} / {_ms(a.get('p99'))} | "
            f"{_ms(b.get('p50'))} / {_ms(b.get('p99'))} | {_ms(c.get('p50'))} / {_ms(c.get('p99'))} | "
            f"{r.get('duplicate_sends', 0)} | {f.get('pool_exhausted', 0)} | {f.get('leader_step_downs', 0)} |")
    add("")
    _img(add, plots, "latency", rel, "latency")


def _standby_callbacks(add: Any, sb: dict[str, Any]) -> None:
    add(f"## 2b. {sb['title']}")
    add("")
    add(f"Two in-process instances on one database, open loop at {sb['setup']['rate']:.0f} jobs/s for "
        f"{sb['setup']['seconds']:.0f} s, as in 2; the callback URL points at the leader, then at the standby "
        "(which stores the callback and NOTIFYs in the same transaction; the leader LISTENs and routes it at "
        "once; the 1 s sweep is the safety net). Latency per job as in 2.")
    add("")
    add("| run | delivered | callbacks that went there | callback→send p50 / p99 | pool errors | leader step-downs |")
    add("|---|---|---|---|---|---|")
    for r in sb["runs"]:
        a = r["callback_sent_to_telegram_s"]
        f = r.get("log_findings", {})
        add(f"| {r['label']} | {r['delivered']}/{r['jobs']} | {r['callbacks_to_that_instance']}/{r['callback_attempts']} | "
            f"{_ms(a.get('p50'))} / {_ms(a.get('p99'))} | {f.get('pool_exhausted', 0)} | "
            f"{f.get('leader_step_downs', 0)} |")
    add("")
    add(f"Standby ÷ leader p50: **{sb['headline']['ratio']:.2f}×** (target ≤ 2×).")
    add("")


def _inflight(add: Any, inf: dict[str, Any], plots: dict[str, str], rel: str) -> None:
    add(f"## 3. {inf['title']}")
    add("")
    add("Two `kiebot run` processes behind a front door; N jobs in `submitted` with KIE tasks that never finish; "
        "the bench hands leadership over (release + NOTIFY), one instance adopts them all, is SIGKILLed, the "
        "other adopts them all, then every task completes at once and the results must arrive exactly once. "
        "RSS and threads from /proc/<pid>/status; actors from `kiebot_job_actors` on /metrics.")
    add("")
    add("| attempt | adopted (actors / time) | RSS passive → leading | per job | threads added | SIGKILL → active | "
        "→ all actors | results / notices / duplicates | pool errors | step-downs | verdict |")
    add("|---|---|---|---|---|---|---|---|---|---|---|")
    for a in inf["attempts"]:
        mem, tm, d = a["memory"], a["timings"], a["delivery"]
        passive = next(iter(mem.get("passive", {}).values()), {})
        f = a.get("log_findings", {})
        pe = sum(v.get("pool_exhausted", 0) for v in f.values())
        sd = sum(v.get("leader_step_downs", 0) for v in f.values())
        add(f"| {a['jobs']:,} as built | "
            f"{_num(mem.get('leader_job_actors'), 0)} / {'≈' if tm.get('first_all_actors_from_samples') else ''}"
            f"{_num(tm.get('first_all_actors_s'))} s | "
            f"{_num(passive.get('VmRSS', 0) / 1024)} → {_num(mem.get('leader', {}).get('VmRSS', 0) / 1024)} MiB | "
            f"{_num(mem.get('rss_per_job_kb'))} kB | {_num(mem.get('threads_added'))} | "
            f"{_s(tm.get('takeover_active_s'))} | {'≈' if tm.get('takeover_all_actors_from_samples') else ''}"
            f"{_num(tm.get('takeover_all_actors_s'))} s | "
            f"{d['unique_tasks']:,} / {d['failure_notices']:,} / {d['duplicates']:,} | {pe:,} | {sd} | "
            f"{'works' if a['works'] else 'broke'} |")
    add("")
    add("≈: read from the 1-second samples (threads − the passive count ≥ N) because it took longer than the "
        "scenario's wait. Memory per job = (RSS when leading − RSS when passive) ÷ N, the same process.")
    add("")
    h = inf["headline"]
    add(f"Largest N that works end to end as built: **{h['largest_n_that_works'] or 'none of the sizes tried'}**. "
        "'Notices' are failure messages sent instead of a result (the supervisor gives a job up after three "
        "crashes of its JobActor); a job counts as working only with its result delivered exactly once and no "
        "pool exhaustion, actor crash or leader step-down in the logs."
        + (" The search for it stopped at its time budget, so a larger N may work." if h.get("ladder_cut_by_time") else ""))
    add("")
    for a in inf["attempts"]:
        if a.get("problems"):
            add(f"- {a['label']}: " + "; ".join(a["problems"]))
    add("")
    for key in plots:
        if key.startswith("inflight_"):
            _img(add, plots, key, rel, key)


def _ceiling(add: Any, tc: dict[str, Any], plots: dict[str, str], rel: str) -> None:
    s = tc["setup"]
    add(f"## 4. {tc['title']}")
    add("")
    add(f"{s['results']:,} results to {s['chats']} chats from {s['caller_threads']} threads through BotGateway + "
        "TelegramSender + FloodControl as shipped (`bot.presenter.Presenter.send_result_part`: sendPhoto by URL with caption "
        "and buttons) into `TelegramSim(enforce_limits=True)`.")
    add("")
    add("| delivered | sustained | share of 30/s | 429s | most in any 1 s | smallest gap in one chat | took |")
    add("|---|---|---|---|---|---|---|")
    add(f"| {tc['delivered']:,} | {tc['sustained_per_s']:.2f}/s | {tc['share_of_30']:.1%} | {tc['http_429']} | "
        f"{tc['max_in_1s']} | {_s(tc['per_chat_gap_s'].get('min'))} | {tc['elapsed_s']:.1f} s |")
    add("")
    _img(add, plots, "telegram_ceiling", rel, "telegram ceiling")


def _failover(add: Any, fo: dict[str, Any], plots: dict[str, str], rel: str) -> None:
    add(f"## 5. {fo['title']}")
    add("")
    add(f"Two idle `kiebot run` processes; {fo['setup']['trials_each']} trials of each signal, alternating; "
        f"takeover = signal → the standby's /health says active (polled every {fo['setup']['health_poll_s'] * 1000:.0f} ms).")
    add("")
    if fo.get("silent partition", {}).get("n"):
        add("Silent partition: the leader's database traffic goes through a proxy that is frozen (no byte "
            "passes, every socket stays open); takeover = freeze → the standby's /health says active, "
            "with KIEBOT_LOCK_SILENCE_S at its default. Not in the plot (seconds, not milliseconds).")
        add("")
    add("| signal | trials | min | median | p90 | p99 | max |")
    add("|---|---|---|---|---|---|---|")
    for sig in ("SIGKILL", "SIGTERM", "silent partition"):
        s = fo.get(sig)
        if s is None:       # results from before the partition case
            continue
        add(f"| {sig} | {s.get('n', 0)} | {_ms(s.get('min'))} | {_ms(s.get('p50'))} | {_ms(s.get('p90'))} | "
            f"{_ms(s.get('p99'))} | {_ms(s.get('max'))} |")
    add("")
    e = fo.get("sigterm_exit_s", {})
    if e.get("n"):
        add(f"After SIGTERM the old leader exited within {_ms(e.get('p50'))} (median), {_ms(e.get('max'))} (max).")
        add("")
    if fo.get("problems"):
        add("Problems: " + "; ".join(fo["problems"]))
        add("")
    _img(add, plots, "failover", rel, "failover")


def _payments(add: Any, pm: dict[str, Any]) -> None:
    s, pc, cr, tm, it = pm["setup"], pm["pre_checkout"], pm["credits"], pm["timing"], pm["intake"]
    add(f"## 6. {pm['title']}")
    add("")
    add(f"One in-process instance (polling, `KIEBOT_CLIENT_PACING` on, as shipped); an invoice link for package "
        f"`{s['package']}` ({s['stars']} Stars → {s['credits']} credits) made with createInvoiceLink; "
        f"{s['users']:,} distinct users pay it from {s['payer_threads']} threads of a process of their own, "
        f"released together; the successful_payment of {s['redelivered_charges']} charges is redelivered once or "
        f"twice ({s['redeliveries_planned']} in all) right after the charge. The simulator enforces Telegram's "
        f"{s['pre_checkout_deadline_s']:.0f} s pre-checkout deadline. Answer time = the pre_checkout_query queued at "
        "the simulator → the bot's answer arriving there; it splits into waiting in the simulator's queue for the "
        "bot's next getUpdates and the time inside kiebot from that getUpdates to the answer.")
    add("")
    add("| answered | paid / declined / expired | answer p50 / p95 / p99 / max | waiting for getUpdates p50 / p99 | "
        "inside kiebot p50 / p99 |")
    add("|---|---|---|---|---|")
    a, q, k = pc["answered_after_s"], pc["waiting_for_getupdates_s"], pc["inside_kiebot_s"]
    o = pc["outcomes"]
    add(f"| {pc['answered']:,}/{pc['attempts']:,} | {o.get('paid', 0):,} / {o.get('declined', 0):,} / "
        f"{o.get('expired', 0):,} | {_ms(a.get('p50'))} / {_ms(a.get('p95'))} / {_ms(a.get('p99'))} / "
        f"{_ms(a.get('max'))} | {_ms(q.get('p50'))} / {_ms(q.get('p99'))} | {_ms(k.get('p50'))} / {_ms(k.get('p99'))} |")
    add("")
    add("| credited / paid | duplicates | wallets off | redeliveries seen as duplicates | charge → credited p50 / p99 | "
        "burst → all credited | burst → every update handled | \"paid\" messages (once each) |")
    add("|---|---|---|---|---|---|---|---|")
    c = cr["charged_to_credited_s"]
    add(f"| {cr['credited']:,} / {cr['paid']:,} | {cr['duplicate_credits']} | {cr['wallets_off']} | "
        f"{cr['redeliveries_seen']} / {cr['redeliveries']} | {_s(c.get('p50'))} / {_s(c.get('p99'))} | "
        f"{_s(tm['credited_after_s'])} | {_s(tm['handled_after_s'])} | {cr['announced']:,} "
        f"({cr['announced_twice']} twice), {_num(tm.get('paid_messages_per_s'))}/s |")
    add("")
    fl = pm.get("floor")
    if fl:
        fa = fl["answered_after_s"]
        add(f"The floor — a bot that only long-polls with `requests`, answers every pre-checkout ok from "
            f"16 threads and sends one message per payment (no storage, no PTB, no pacing) — on the same burst "
            f"(other users, a fresh simulator): {fl['answered']:,}/{fl['attempts']:,} answered, p50 "
            f"{_ms(fa.get('p50'))}, p95 {_ms(fa.get('p95'))}, p99 {_ms(fa.get('p99'))}, max {_ms(fa.get('max'))}.")
        add("")
    g = it["poll_to_next_poll_s"]
    add(f"Intake: {it['polls_with_updates']} getUpdates brought updates, {_num(it['updates_per_poll'].get('mean'))} "
        f"on average; from one such poll to the next {_ms(g.get('p50'))} (median), "
        f"{_num(it.get('updates_per_s'))} updates/s. Ledger check: "
        f"{'clean' if pm['ledger']['clean'] else '; '.join(pm['ledger']['violations'][:5])}.")
    add("")
