"""The `kiebot` command line (design.md section 5): run, demo, sim, migrate, models.

Each subcommand is a small function; configuration errors end the command with one line per
problem and exit code 2, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

from config.catalogue import load_catalogue
from config.settings import ConfigError, Settings
from storage.db import DatabaseUnavailable, scrub


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="kiebot", description="Telegram bot for KIE.ai generation.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run one instance (leader or standby)")
    demo = sub.add_parser("demo", help="run the whole system on this machine with simulators and scripted users")
    demo.add_argument("--out", default="demo-output", help="folder for the received images")
    demo.add_argument("--users", type=int, default=3)
    demo.add_argument("--no-kill", action="store_true", help="do not kill the leader midway")
    sim = sub.add_parser("sim", help="start the KIE and Telegram simulators and print their URLs")
    sim.add_argument("--kie-port", type=int, default=0)
    sim.add_argument("--telegram-port", type=int, default=0)
    sub.add_parser("migrate", help="apply database migrations")
    models = sub.add_parser("models", help="list the model catalogue")
    models.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        code = COMMANDS[args.command](args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"kiebot: configuration error: {problem}", file=sys.stderr)
        code = 2
    except DatabaseUnavailable as exc:
        print(f"kiebot: database unavailable: {scrub(str(exc))}", file=sys.stderr)
        code = 3
    raise SystemExit(code)


def cmd_run(args: argparse.Namespace) -> int:
    from runtime import Runtime, resolve_database_url
    from telemetry import logs

    settings = Settings.from_env()
    logs.configure(settings.log_level, settings.log_format, settings.instance_id, settings.secrets())
    Runtime(settings, resolve_database_url(settings)).run_until_signalled()
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from runtime import resolve_database_url
    from storage.migrate import migrate

    settings = Settings.from_env(require_secrets=False)
    applied = migrate(resolve_database_url(settings))
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    catalogue = load_catalogue()
    rows = [{"id": m.id, "kind": m.kind, "task": m.task, "title": m.title,
             "price_credits": float(m.price_credits) if m.price_credits is not None else None,
             "offered": m.offered} for m in catalogue]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
    else:
        for r in rows:
            price = "?" if r["price_credits"] is None else f"{r['price_credits']:g}"
            print(f"{r['id']:<48} {r['kind']:<6} {r['task']:<22} {price:>6}  {'offered' if r['offered'] else ''}")
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    from cli.simulators import serve_simulators

    return serve_simulators(args.kie_port, args.telegram_port)


def cmd_demo(args: argparse.Namespace) -> int:
    from cli.demo import run_demo

    return run_demo(out_dir=args.out, users=args.users, kill_leader=not args.no_kill,
                    data_dir=os.environ.get("KIEBOT_DATA_DIR", ".kiebot"))


COMMANDS = {"run": cmd_run, "migrate": cmd_migrate, "models": cmd_models, "sim": cmd_sim, "demo": cmd_demo}
