"""The money commands (design.md section 5): `kiebot user`, `kiebot grant`, `kiebot ledger check`,
and `kiebot refund`. Amounts are shown and taken in the bot's credits as decimals; the ledger
keeps integer minor units (config/money.py). Each command opens the database, does one thing,
and exits 0 when it did it, 1 when it was refused (unknown user, not enough balance, violations).
"""
from __future__ import annotations

import argparse
import json
from decimal import Decimal
from typing import Any

from config.money import MoneyError, format_credits, parse_credits, to_decimal
from config.settings import ConfigError, Settings
from storage import ledger
from storage.db import Database

USER_JOBS = 100
USER_PAYMENTS = 100


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    user = sub.add_parser("user", help="one Telegram user's balance, jobs and payments")
    user.add_argument("user_id", type=int, help="the Telegram user id")
    user.add_argument("--json", action="store_true", help="print JSON instead of text")
    grant = sub.add_parser("grant", help="add credits to a user (a negative amount takes them away)")
    grant.add_argument("user_id", type=int, help="the Telegram user id")
    grant.add_argument("amount", help="credits, e.g. 10 or -2.5")
    grant.add_argument("--reason", required=True, help="why (kept in the ledger)")
    book = sub.add_parser("ledger", help="the credit ledger")
    book_sub = book.add_subparsers(dest="ledger_command", required=True, metavar="ACTION", help="what to do")
    book_sub.add_parser("check", help="verify every ledger invariant over the whole database")
    refund = sub.add_parser("refund", help="refund a Telegram Stars payment (takes back what is still available)")
    refund.add_argument("charge_id", help="the telegram_payment_charge_id")
    refund.add_argument("--reason", required=True, help="why (kept in the ledger)")


def _open(args: argparse.Namespace) -> Database:
    from cli import database_url_for

    settings = Settings.from_env(require_secrets=False)
    return Database(database_url_for(settings), max_connections=2, application_name="kiebot-cli")


def _number(minor: int) -> Decimal:
    return to_decimal(minor)


def user_report(db: Database, user_id: int) -> dict[str, Any] | None:
    """The `kiebot user --json` object (design.md section 5), or None for a user never seen."""
    from config.catalogue import load_catalogue
    from config.pricing import load_pricing

    known = db.one("user_known", user_id=user_id)
    if not known or not known["known"]:
        return None
    settings = Settings.from_env(require_secrets=False)
    pricing = load_pricing(load_catalogue(), settings.pricing_file)
    wallet = ledger.wallet(db, user_id)
    used = ledger.free_used_today(db, user_id)
    free_left = {m.id: max(0, pricing.free_per_day(m.id) - used.get(m.id, 0))
                 for m in load_catalogue() if pricing.free_per_day(m.id) > 0}
    jobs = [{"id": r["id"], "model": r["model"], "state": r["state"], "price": _number(int(r["price"])),
             "charged": _number(int(r["charged"]))}
            for r in db.all("user_jobs_money", user_id=user_id, limit=USER_JOBS)]
    payments = [{"charge_id": p.charge_id, "stars": p.stars, "credits": _number(p.credits), "state": p.state.value}
                for p in ledger.user_payments(db, user_id, USER_PAYMENTS)]
    return {"user_id": user_id, "available": _number(wallet.available), "held": _number(wallet.held),
            "free_left_today": free_left, "jobs": jobs, "payments": payments}


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def cmd_user(args: argparse.Namespace) -> int:
    db = _open(args)
    try:
        report = user_report(db, args.user_id)
    finally:
        db.close()
    if report is None:
        print(f"kiebot: user {args.user_id} is unknown")
        return 1
    if args.json:
        print(json.dumps(report, default=_json_default, ensure_ascii=False, indent=1))
        return 0
    print(f"user {report['user_id']}: available {format_credits(int(report['available'] * 100))}, "
          f"held {format_credits(int(report['held'] * 100))}")
    for model, left in report["free_left_today"].items():
        print(f"  free today: {model}: {left} left")
    for job in report["jobs"]:
        print(f"  job {job['id']:>8}  {job['model']:<40} {job['state']:<17} price {job['price']:>8}  "
              f"charged {job['charged']:>8}")
    for pay in report["payments"]:
        print(f"  payment {pay['charge_id']}  {pay['stars']} Stars -> {pay['credits']} credits  {pay['state']}")
    return 0


def cmd_grant(args: argparse.Namespace) -> int:
    try:
        amount = parse_credits(args.amount)
    except MoneyError as exc:
        raise ConfigError([f"AMOUNT: {exc}"]) from None
    reason = args.reason.strip()
    if not reason:
        raise ConfigError(["--reason must say why"])
    db = _open(args)
    try:
        result = ledger.grant(db, args.user_id, amount, reason)
    finally:
        db.close()
    if isinstance(result, ledger.GrantRefused):
        print(f"kiebot: refused: user {args.user_id} has {format_credits(result.available)} available; "
              f"taking {format_credits(-amount)} would go below zero")
        return 1
    print(f"user {args.user_id}: {'+' if amount >= 0 else ''}{format_credits(amount)}, "
          f"available {format_credits(result.available)}")
    return 0


def cmd_ledger(args: argparse.Namespace) -> int:
    db = _open(args)
    try:
        report = ledger.check(db)
    finally:
        db.close()
    if report.clean:
        print(f"ledger ok: {report.entries} entries, {report.users} wallets, every invariant holds")
        return 0
    for violation in report.violations:
        print(f"ledger violation: {violation}")
    return 1


def cmd_refund(args: argparse.Namespace) -> int:
    db = _open(args)
    try:
        result = ledger.request_refund(db, args.charge_id, args.reason)
    finally:
        db.close()
    match result.status:
        case "requested":
            print(f"refund of {args.charge_id} queued; {format_credits(result.taken or 0)} credits taken back from "
                  f"user {result.user_id}; the leader sends it to Telegram")
            return 0
        case "already":
            print(f"kiebot: {args.charge_id} was refunded (or queued) before")
            return 1
        case _:
            print(f"kiebot: no payment {args.charge_id}")
            return 1


def cmd_drift(args: argparse.Namespace) -> int:
    """`kiebot models --drift`: per model, what KIE said it charged against what our price data
    expected, over the jobs that recorded both (a stale price shows as a ratio away from 1)."""
    db = _open(args)
    try:
        rows = db.all("kie_price_drift")
    finally:
        db.close()
    report = [{"model": r["model"], "jobs": int(r["jobs"]), "quoted": Decimal(r["quoted"]),
               "consumed": Decimal(r["consumed"]),
               "ratio": (Decimal(r["consumed"]) / Decimal(r["quoted"])) if r["quoted"] else None} for r in rows]
    if args.json:
        print(json.dumps([{**r, "ratio": float(r["ratio"]) if r["ratio"] is not None else None} for r in report],
                         default=_json_default, indent=1))
        return 0
    if not report:
        print("no job has recorded what KIE charged yet")
        return 0
    print(f"{'MODEL':<42} {'JOBS':>6} {'QUOTED':>10} {'CHARGED':>10} {'CHARGED/QUOTED':>15}")
    for r in report:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        flag = "  <- stale price" if r["ratio"] is not None and abs(r["ratio"] - 1) > Decimal("0.05") else ""
        print(f"{r['model']:<42} {r['jobs']:>6} {r['quoted']:>10.2f} {r['consumed']:>10.2f} {ratio:>15}{flag}")
    return 0
