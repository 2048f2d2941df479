"""Operator commands (/stats, /refund), for the Telegram user ids in ADMIN_IDS only, checked on
every call against the id Telegram vouches for (never a parameter a user could type); anyone else
gets the not-understood reply."""
from __future__ import annotations

from telegram import Update
from telegram.ext import ContextTypes

from bot import prices
from bot.context import deps_of, who
from bot.telling import OnFailure, tell
from config.texts import text
from storage import ledger
from storage.jobs import counts_by_state, database_gauges


async def stats(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/stats: jobs by state and the inbox backlogs."""
    deps = deps_of(context)
    chat_id, user_id, lang = who(update, deps)
    if user_id not in deps.admin_ids:
        await context.bot.send_message(chat_id, text(lang, "not_understood"))
        return
    _, callbacks, updates, oldest = database_gauges(deps.db)
    # Every state, finished ones included: a full count, fine for an operator's occasional look
    # (the /metrics gauges count unfinished jobs only, so that scrapes stay cheap).
    by_state = counts_by_state(deps.db)
    lines = [f"{state}: {n}" for state, n in sorted(by_state.items())]
    lines += [f"callback backlog: {callbacks}", f"update backlog: {updates}", f"oldest unfinished job: {oldest:.0f} s"]
    await context.bot.send_message(chat_id, "\n".join(lines) or "no jobs")


async def refund(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/refund <charge_id>: give a Stars payment back. What is still available of its credits is
    taken back now; the refundStarPayment call goes out through the leader's outbox."""
    deps = deps_of(context)
    chat_id, user_id, lang = who(update, deps)
    if user_id not in deps.admin_ids:
        await context.bot.send_message(chat_id, text(lang, "not_understood"))
        return
    if not context.args:
        await context.bot.send_message(chat_id, text(lang, "refund_usage"))
        return
    charge = context.args[0]
    asked = ledger.request_refund(deps.db, charge, f"/refund by admin {user_id}")
    match asked.status:
        case "requested":
            reply = text(lang, "refund_requested", charge=charge, user=asked.user_id,
                         taken=prices.amount(lang, asked.taken or 0))
        case "already":
            reply = text(lang, "refund_already", charge=charge, taken=prices.amount(lang, asked.taken or 0))
        case _:
            reply = text(lang, "refund_unknown", charge=charge)
    # Handled again, the update finds the refund asked for and says so ("refund_already").
    await tell(context.bot.send_message(chat_id, reply), "the /refund answer", OnFailure.AGAIN)
