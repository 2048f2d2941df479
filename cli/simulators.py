"""`kiebot sim`: both simulators on 127.0.0.1, their URLs printed, until Ctrl-C.

Owns the command's options for the KIE simulator (error modes, failure rate, signing key, seed)
and their checks; the simulators themselves are imported only when the command runs, so that
building the command line never loads them.
"""
from __future__ import annotations

import argparse
import contextlib
import random
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sim.kie import KieSim
    from sim.telegram import TelegramSim

ERROR_MODES = ("http200", "http", "mixed")     # sim.kie.ERROR_MODES, without importing the sim
BILLING_MODES = ("on_success", "on_create")    # sim.kie.BILLING_MODES
DEFAULT_DURATION_S = 2.0


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0.0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, not {text}")
    return value


def add_kie_sim_arguments(parser: argparse.ArgumentParser) -> None:
    """The KIE simulator's options of `kiebot sim` (the ports are defined by the caller)."""
    parser.add_argument("--kie-error-mode", choices=ERROR_MODES, default="http200",
                        help="how KIE errors travel: http200 = always HTTP 200 with the code in the body "
                             "(KIE's usual way), http = the HTTP status is the code, mixed = either at random "
                             "(default: http200)")
    parser.add_argument("--kie-fail-rate", type=_fraction, default=0.0, metavar="FRACTION",
                        help="share of KIE API calls answered with a server error (code 500), 0 to 1 (default: 0)")
    parser.add_argument("--kie-hmac-key", default=None, metavar="KEY",
                        help="sign callbacks with this key (X-Webhook-Signature); the bot needs the same "
                             "KIE_WEBHOOK_HMAC_KEY, which is printed (default: callbacks are not signed)")
    parser.add_argument("--kie-balance", default="1000", metavar="CREDITS",
                        help="the account's starting credits (default: 1000)")
    parser.add_argument("--kie-billing", choices=BILLING_MODES, default="on_success",
                        help="when a task's price is charged (default: on_success)")
    parser.add_argument("--kie-duration", type=_non_negative, default=DEFAULT_DURATION_S, metavar="SECONDS",
                        help=f"how long an image task takes to finish (default: {DEFAULT_DURATION_S:g})")
    parser.add_argument("--kie-no-rate-limits", action="store_true",
                        help="do not enforce KIE's per-key rate limits (20 createTask per 10 s, 10 recordInfo per s)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed for the simulators' ids and random choices (default: a new one each start, "
                             "so task ids never repeat across runs against one database)")


@dataclass(frozen=True)
class SimOptions:
    """What `kiebot sim` starts: ports, and how the KIE simulator behaves."""

    kie_port: int = 0
    telegram_port: int = 0
    kie_error_mode: str = "http200"
    kie_fail_rate: float = 0.0
    kie_hmac_key: str | None = None
    kie_balance: str = "1000"
    kie_billing: str = "on_success"
    kie_duration_s: float = DEFAULT_DURATION_S
    kie_rate_limits: bool = True
    seed: int | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SimOptions:
        return cls(kie_port=args.kie_port, telegram_port=args.telegram_port,
                   kie_error_mode=args.kie_error_mode, kie_fail_rate=args.kie_fail_rate,
                   kie_hmac_key=args.kie_hmac_key, kie_balance=args.kie_balance,
                   kie_billing=args.kie_billing, kie_duration_s=args.kie_duration,
                   kie_rate_limits=not args.kie_no_rate_limits, seed=args.seed)


@contextlib.contextmanager
def running_simulators(options: SimOptions) -> Iterator[tuple[KieSim, TelegramSim]]:
    """Both simulators, started with `options`, stopped on exit."""
    from sim.kie import KieSim
    from sim.telegram import TelegramSim

    # A fresh seed per start unless one is given: the bot's database outlives the simulators,
    # and a task id it already holds must never be handed out again (jobs.kie_task_id is unique).
    seed = options.seed if options.seed is not None else random.SystemRandom().randrange(2**31)
    kie = KieSim(port=options.kie_port, seed=seed, default_duration_s=options.kie_duration_s,
                 balance=options.kie_balance, error_mode=options.kie_error_mode,
                 hmac_key=options.kie_hmac_key, server_error_rate=options.kie_fail_rate,
                 rate_limits=options.kie_rate_limits, billing=options.kie_billing)
    with kie, TelegramSim(port=options.telegram_port, seed=seed) as telegram:
        yield kie, telegram


def export_lines(kie: KieSim, telegram: TelegramSim, options: SimOptions) -> list[str]:
    """The variables a `kiebot run` needs to talk to these simulators (their own fake keys)."""
    lines = [f"KIE_API_URL={kie.url}", f"KIE_UPLOAD_URL={kie.upload_url}", f"KIE_API_KEY={kie.api_key}",
             f"TELEGRAM_API_URL={telegram.url}", f"TELEGRAM_BOT_TOKEN={telegram.token}"]
    if options.kie_hmac_key is not None:
        lines.append(f"KIE_WEBHOOK_HMAC_KEY={options.kie_hmac_key}")
    return lines


def serve_simulators(kie_port: int = 0, telegram_port: int = 0, options: SimOptions | None = None) -> int:
    """Run until SIGINT or SIGTERM; `options` (when given) carries its own ports."""
    options = options or SimOptions(kie_port=kie_port, telegram_port=telegram_port)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    with running_simulators(options) as (kie, telegram):
        for line in export_lines(kie, telegram, options):
            print(line)
        print(f"Chat with the bot in a browser: {telegram.url}/web/")
        print("Simulators running; export the lines above and start `kiebot run`. Ctrl-C stops.", flush=True)
        done.wait()
    return 0
