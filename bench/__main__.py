"""`python -m bench [--quick] [--only NAME[,NAME…]] [--out DIR] [--report-only]` — run the benchmark
scenarios and write results.json, plots/*.svg and REPORT.md.

The full run writes into bench/ (the committed report); `--quick` (a small smoke version)
writes into bench/.runs/quick/ unless `--out` says otherwise. `--only` runs some scenarios and
merges them into the existing results.json of the output folder before rewriting the report.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

for _name in list(os.environ):          # never let a developer's real token or database reach a run
    if _name.startswith(("KIEBOT_", "TELEGRAM_", "KIE_")) or _name in ("DATABASE_URL", "PUBLIC_URL"):
        del os.environ[_name]

from bench import failover, inflight, latency, payments, standby_callbacks, telegram_ceiling, throughput  # noqa: E402
from bench.cpu import ForeignLoad  # noqa: E402
from bench.logs import quiet_logging  # noqa: E402
from bench.notes import notes_for  # noqa: E402
from bench.provenance import code_fingerprint, machine_info  # noqa: E402
from bench.report import make_plots, write_report  # noqa: E402
from bench.runs import BENCH_DIR, RUNS_DIR  # noqa: E402

SCENARIOS = {m.NAME: m for m in (throughput, latency, standby_callbacks, inflight, telegram_ceiling, failover,
                                  payments)}


def _clean(value: Any) -> Any:
    """JSON without NaN/inf (they become null)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke version (about 2 minutes)")
    parser.add_argument("--only", default="", help=f"comma-separated scenarios: {', '.join(SCENARIOS)}")
    parser.add_argument("--out", default=None, help="output folder (default: bench/, or bench/.runs/quick with --quick)")
    parser.add_argument("--report-only", action="store_true",
                        help="only rewrite REPORT.md and the plots from the output folder's results.json")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}")
    out = Path(args.out) if args.out else (RUNS_DIR / "quick" if args.quick else BENCH_DIR)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    if args.report_only:
        results = json.loads(results_path.read_text())
        for name, module in SCENARIOS.items():     # targets follow the current definitions
            scenario = results.get("scenarios", {}).get(name)
            if scenario and "error" not in scenario and hasattr(module, "targets_for"):
                scenario.update(module.targets_for(scenario))
        results["notes"] = notes_for(results)
        results_path.write_text(json.dumps(_clean(results), indent=1, ensure_ascii=False))
        plots = make_plots(results, out / "plots")
        write_report(results, out / "REPORT.md", plots, "plots")
        print(f"rewrote {out / 'REPORT.md'} and {len(plots)} plots from {results_path}")
        return 0
    results: dict[str, Any] = {}
    if args.only and results_path.exists():
        results = json.loads(results_path.read_text())
    results.setdefault("scenarios", {})
    started = time.monotonic()
    command = ".venv/bin/python -m bench" + (" --quick" if args.quick else "") + (f" --only {args.only}" if args.only else "")
    print(f"kiebot benchmarks: {', '.join(names)}{' (quick)' if args.quick else ''} → {out}", flush=True)
    results["machine"] = machine_info()
    results["code"] = code_fingerprint()
    for name in names:
        print(f"\n== {name}", flush=True)
        t0 = time.monotonic()
        load = ForeignLoad().start()
        try:
            outcome = SCENARIOS[name].run(quick=args.quick)
        except Exception:  # noqa: BLE001 - one broken scenario must not hide the others
            outcome = {"name": name, "title": getattr(SCENARIOS[name], "TITLE", name), "error": traceback.format_exc()}
            print(outcome["error"], file=sys.stderr, flush=True)
        finally:
            quiet_logging()
        outcome["duration_s"] = time.monotonic() - t0
        outcome["machine_load"] = load.stop()
        if outcome["machine_load"]["foreign_cpus_upper_bound"] > 0.2:
            print(f"warning: other processes used about {outcome['machine_load']['foreign_cpus_upper_bound']:.1f} "
                  f"CPUs during {name}", file=sys.stderr, flush=True)
        results["scenarios"][name] = _clean(outcome)
        print(f"== {name} took {outcome['duration_s']:.0f}s", flush=True)
        results_path.write_text(json.dumps(_clean(results), indent=1, ensure_ascii=False))
    code_after = code_fingerprint()
    if code_after["sha256"] != results["code"]["sha256"]:
        results["code"]["changed_during_run"] = code_after
        print(f"warning: kiebot's source changed during the run ({results['code']['sha256']} → "
              f"{code_after['sha256']})", file=sys.stderr, flush=True)
    ordered = {n: results["scenarios"][n] for n in SCENARIOS if n in results["scenarios"]}
    results["scenarios"] = ordered
    duration = time.monotonic() - started
    # This run's own time (with --only, the other scenarios' rows are older runs').
    results["run"] = {"command": command, "quick": args.quick,
                      "started_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                      "duration_s": duration, "scenarios_run": names}
    results["notes"] = notes_for(results)
    results_path.write_text(json.dumps(_clean(results), indent=1, ensure_ascii=False))
    plots_dir = out / "plots"
    plots = make_plots(results, plots_dir)
    write_report(results, out / "REPORT.md", plots, "plots")
    failed = [t["what"] for s in results["scenarios"].values() for t in s.get("targets", []) if t.get("pass") is False]
    print(f"\nwrote {out / 'REPORT.md'}, {results_path.name}, {len(plots)} plots in {duration / 60:.1f} min; "
          f"{len(failed)} target(s) missed", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
