"""/balance: what a user has (available, held), today's free generations left, the last ten
movements of their credits with the job and model each belongs to, their referral link, and
Top up. Everything is read from the ledger as it is now; nothing here writes."""
from __future__ import annotations

from collections.abc import Callable

from telegram import Update
from telegram.ext import ContextTypes

from bot import callback_data as cd
from bot import referral, wizard
from bot.context import deps_of, who
from config.money import format_credits
from config.texts import text
from storage import ledger
from storage.ledger import EntryKind, Movement

MOVEMENTS = 10
REASON_MAX = 60         # characters of an operator's grant reason shown
MINUS = "\u2212"     # the minus sign, not a hyphen


async def balance(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/balance: the wallet, the free tier today, the latest movements, the referral link."""
    deps = deps_of(context)
    chat_id, user_id, lang = who(update, deps)
    purse = ledger.wallet(deps.db, user_id)
    used = ledger.free_used_today(deps.db, user_id)
    lines = [text(lang, "balance_available", amount=format_credits(purse.available))]
    if purse.held:
        lines.append(text(lang, "balance_held", amount=format_credits(purse.held)))
    free = []
    for model_id, per_day in deps.pricing.free_tier.items():
        spec = deps.catalogue.get(model_id)
        if spec is not None and per_day > 0 and deps.pricing.offered(spec):
            left = max(per_day - used.get(model_id, 0), 0)
            free.append(text(lang, "balance_free_item", name=spec.name(lang), left=left, n=per_day))
    if free:
        lines.append(text(lang, "balance_free", items=", ".join(free)))

    def model_name(model_id: str | None) -> str:
        spec = deps.catalogue.get(model_id) if model_id else None
        return spec.name(lang) if spec else (model_id or "")

    moves = ledger.movements(deps.db, user_id, MOVEMENTS)
    lines += ["", text(lang, "balance_movements" if moves else "balance_no_movements")]
    lines += [movement_line(lang, m, model_name) for m in moves]
    if context.bot.username:
        link = referral.link(context.bot.username, user_id)
        bonus = deps.pricing.referrer_bonus
        lines += ["", text(lang, "balance_referral", link=link, bonus=format_credits(bonus)) if bonus
                  else text(lang, "balance_link", link=link)]
    rows = [[(text(lang, "btn_top_up"), cd.build(cd.TopUp()))]]
    await context.bot.send_message(chat_id, "\n".join(lines), reply_markup=wizard.markup(rows))


def movement_line(lang: str, move: Movement, model_name: Callable[[str | None], str]) -> str:
    """One movement in words, its amount signed with a minus sign or a plus ("+100 · Stars purchase")."""
    size = format_credits(abs(move.amount))
    signed = f"+{size}" if move.amount > 0 else f"{MINUS}{size}" if move.amount < 0 else size
    job = text(lang, "mv_job", id=move.job_id, model=model_name(move.model)) if move.job_id is not None else ""
    reason = f" ({_short(move.reason)})" if move.reason else ""
    match move.kind:
        case EntryKind.HOLD:
            return text(lang, "mv_hold", amount=signed, job=job)
        case EntryKind.CAPTURE:
            return text(lang, "mv_capture", amount=size, job=job)
        case EntryKind.RELEASE:
            return text(lang, "mv_release", amount=signed, job=job)
        case EntryKind.PURCHASE:
            return text(lang, "mv_purchase", amount=signed)
        case EntryKind.REFUND:
            return text(lang, "mv_refund", amount=signed)
        case EntryKind.GRANT:
            return text(lang, "mv_grant" if move.amount > 0 else "mv_grant_back", amount=signed, reason=reason)
        case EntryKind.WELCOME:
            return text(lang, "mv_welcome", amount=signed)
        case EntryKind.REFERRAL:
            return text(lang, "mv_referral", amount=signed)


def _short(reason: str) -> str:
    return reason if len(reason) <= REASON_MAX else reason[:REASON_MAX - 1] + "…"
