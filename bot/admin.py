"""Operator commands, for the Telegram user ids in ADMIN_IDS only, checked on every call
against the id Telegram vouches for (never a parameter a user could type)."""
from __future__ import annotations

from telegram import Update
from telegram.ext import ContextTypes

from bot.context import deps_of, who
from config.texts import text
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
