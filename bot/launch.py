"""Starting a job from the chat: the one place a handler creates a job. It checks the draft
once more, enforces one generation at a time, prices it, sends the progress message, commits the
job row with its price held (storage.jobs.create_job) and wakes the supervisor; it never calls KIE.

Money: a job starts only at a price the user agreed to (`agreed`, minor units; 0 for the
free starts of /imagine and Regenerate). Costing more than that now, it is not started: the
caller shows the confirmation (REPRICED). The balance is read before the progress message is
sent, so a refusal for want of credits leaves no "starting…" behind; when the balance changes
in between and create_job still says insufficient, the progress message is edited into the
refusal. A deposed intake creates nothing and leaves its update to the next leader.
"""
from __future__ import annotations

import enum
from typing import Any

from telegram import InlineKeyboardMarkup
from telegram.ext import ContextTypes

from bot import callback_data as cd
from bot import flood_control, prices, wizard
from bot.context import deps_of
from config.catalogue import ModelSpec
from config.texts import text
from faults import crashpoint
from storage import ledger
from storage.jobs import (
    Created,
    Existing,
    Insufficient,
    NewJob,
    NotLeading,
    Repriced,
    active_jobs,
    create_job,
    find_job,
)


class Launch(enum.Enum):
    """How an attempt to start a job ended (what the user was told is in each comment)."""

    STARTED = "started"      # created now, or before by the same request (a second tap, a replay)
    BUSY = "busy"            # another generation runs ("busy"): the draft waits
    REFUSED = "refused"      # its input or its model cannot run (said why)
    SHORT = "short"          # not enough credits (price, balance, Top up): the draft waits
    REPRICED = "repriced"    # it costs more than agreed: nothing said; the caller confirms it
    LEFT = "left"            # this instance no longer leads: the next leader handles the update


async def start_job(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int, lang: str, spec: ModelSpec,
                    given: dict[str, Any], request_key: str, agreed: int = 0) -> Launch:
    """Create the job (committed, its price held) with its progress message, then wake the
    supervisor; `agreed` is the most the user agreed to pay."""
    deps = deps_of(context)
    existing = find_job(deps.db, request_key)
    if existing is not None:
        if request_key.startswith("draft:"):      # a second tap on the same button
            deps.metrics.duplicates_suppressed.labels("button").inc()
            await context.bot.send_message(chat_id, text(lang, "already_started"))
        deps.notify_job(existing.id)               # else: this very update, handled again after a crash
        return Launch.STARTED
    if len(active_jobs(deps.db, user_id)) >= deps.max_active_jobs:
        await context.bot.send_message(chat_id, text(lang, "busy"))
        return Launch.BUSY
    job_input = spec.with_defaults(given)
    problems = wizard.draft_problems(spec, job_input)
    if problems:
        await context.bot.send_message(chat_id, text(lang, "bad_value", reason="; ".join(problems)))
        return Launch.REFUSED
    charge = prices.charge_for(deps.db, deps.pricing, user_id, spec, job_input)
    if charge.price is None:
        key = "no_price_free_used" if charge.free_per_day > 0 else "no_price"
        await context.bot.send_message(chat_id, text(lang, key, title=spec.name(lang)))
        return Launch.REFUSED
    if charge.price > agreed:
        return Launch.REPRICED
    price = charge.quote.price if charge.quote else None    # held only when no free generation is left
    if not charge.free:
        available = ledger.wallet(deps.db, user_id).available
        if price is not None and available < price:
            words, markup = short_of_credits(lang, price, available)
            await context.bot.send_message(chat_id, words, reply_markup=markup)
            return Launch.SHORT
    note = prices.free_note(lang, charge, after_this=True)
    progress = await context.bot.send_message(
        chat_id, text(lang, "progress_queued", title=spec.name(lang)) + (f"\n{note}" if note else ""))
    creation = create_job(deps.db, NewJob(
        request_key=request_key, chat_id=chat_id, user_id=user_id, lang=lang, model=spec.id,
        input=job_input, deadline_s=spec.deadline_s, progress_message_id=progress.message_id,
        price=price, agreed=agreed, free_per_day=charge.free_per_day,
        kie_credits=charge.quote.kie_credits if charge.quote else None, epoch=flood_control.send_epoch.get()))
    match creation:
        case Created(job=job):
            crashpoint("after_job_insert")
            deps.metrics.jobs_created.labels(spec.id).inc()
            deps.notify_job(job.id)
        case Existing(job=job):
            deps.notify_job(job.id)
        case Insufficient(price=short_price, available=available):
            words, markup = short_of_credits(lang, short_price, available)
            await context.bot.edit_message_text(words, chat_id=chat_id, message_id=progress.message_id,
                                                reply_markup=markup)
            return Launch.SHORT
        case Repriced():
            # Its last free generation went to another of the user's chats meanwhile: nothing was
            # held; the caller asks for the price instead.
            await context.bot.delete_message(chat_id, progress.message_id)
            return Launch.REPRICED
        case NotLeading():
            flood_control.leave_update()
            return Launch.LEFT
    return Launch.STARTED


def short_of_credits(lang: str, price: int, available: int) -> tuple[str, InlineKeyboardMarkup]:
    """The refusal for want of credits: the price, the balance, and Top up (the draft is kept)."""
    words = text(lang, "short_of_credits", price=prices.amount(lang, price), balance=prices.amount(lang, available))
    return words, wizard.markup([[(text(lang, "btn_top_up"), cd.build(cd.TopUp()))]])
