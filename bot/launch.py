"""Starting a job from the chat: the one place a handler creates a job. It checks the draft
once more, prices it, sends the progress message, commits the job row with its price held
(storage.jobs.create_job) and wakes the supervisor; it never calls KIE.

The queue: up to `max_active_jobs` of a user's generations run at once; further ones wait their
turn in Postgres (state queued, price held at once) up to `queue_length`, each with its own
progress message showing its place and a Cancel button, and start by themselves (the JobActor
side). Beyond the queue's length the request is refused in plain words (the draft waits).

Money: a job starts only at a price the user agreed to (`agreed`, minor units; 0 for the
free starts of /imagine and Regenerate). Costing more than that now, it is not started: the
caller shows the confirmation (REPRICED). The balance is read before the progress message is
sent, so a refusal for want of credits leaves no "starting…" behind; when the balance changes
in between and create_job still says insufficient, the progress message is edited into the
refusal. A deposed intake creates nothing and leaves its update to the next leader.

A progress message Telegram may have shown (its answer lost, a reset after sending) announces a
job, so the job is made, once, without a progress message id (`send_progress`); one Telegram
did not send (a 5xx, a long 429) leaves nothing done, and the error handler's apology is true.

Groups: the job keeps the user's message that asked for it (`request_message_id`: the /imagine
message, a wizard's prompt), and in a group the progress message replies to it, as the result
and a failure notice (which replaces the progress message) will.
"""
from __future__ import annotations

import enum
import logging
from typing import Any

from telegram import InlineKeyboardMarkup
from telegram.error import TelegramError, TimedOut
from telegram.ext import ContextTypes

from actors.ports import SendOutcome
from bot import callback_data as cd
from bot import flood_control, job_buttons, prices, wizard
from bot.context import Deps, deps_of
from bot.presenter import control_buttons, estimate_words, queued_words
from bot.sender import classify_send_error, group_reply, keyboard
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
    QueueFull,
    Repriced,
    create_job,
    find_job,
    launch_view,
)

log = logging.getLogger(__name__)


class Launch(enum.Enum):
    """How an attempt to start a job ended (what the user was told is in each comment)."""

    STARTED = "started"      # created now (running, or queued: its place is shown), or before by
                             # the same request (a second tap, a replay)
    BUSY = "busy"            # the user's queue is full ("queue_full"): the draft waits
    REFUSED = "refused"      # its input or its model cannot run (said why)
    SHORT = "short"          # not enough credits (price, balance, Top up): the draft waits
    REPRICED = "repriced"    # it costs more than agreed: nothing said; the caller confirms it
    LEFT = "left"            # this instance no longer leads: the next leader handles the update


async def start_job(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int, lang: str, spec: ModelSpec,
                    given: dict[str, Any], request_key: str, agreed: int = 0,
                    request_message_id: int | None = None) -> Launch:
    """Create the job (committed, its price held) with its progress message, then wake the
    supervisor; `agreed` is the most the user agreed to pay; `request_message_id` the message in
    `chat_id` that asked for it (None: none to reply to)."""
    deps = deps_of(context)
    existing = find_job(deps.db, request_key)
    if existing is not None:
        # This very request handled again (after a crash, by the next leader): nothing is said.
        # A `draft:` key is a start button's, and that press is answered by its caller, once (a
        # later tap on it, by bot.dialogue.stale, with a toast): never a new message in the chat.
        if request_key.startswith("draft:"):
            deps.metrics.duplicates_suppressed.labels("button").inc()
        deps.notify_job(existing.id)
        return Launch.STARTED
    view = launch_view(deps.db, user_id, spec.id)
    queue_length = queue_length_of(deps)
    queued = view.running >= deps.max_active_jobs or view.waiting > 0
    if queued and view.waiting >= queue_length:
        await context.bot.send_message(chat_id, text(lang, "queue_full", waiting=view.waiting))
        return Launch.BUSY
    job_input = spec.with_defaults(given)
    problems = wizard.draft_problems(spec, job_input, lang)
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
    expected = view.expected
    estimate = estimate_words(lang, expected.median_s if expected else None, expected.p90_s if expected else None,
                              spec.typical_time_s, None)
    words = (queued_words(lang, spec.name(lang), view.waiting + 1, estimate) if queued
             else text(lang, "progress_queued", title=spec.name(lang), estimate=estimate))
    progress_id = await send_progress(context, chat_id, lang, words + (f"\n{note}" if note else ""), request_key,
                                      request_message_id)
    creation = create_job(deps.db, NewJob(
        request_key=request_key, chat_id=chat_id, user_id=user_id, lang=lang, model=spec.id,
        input=job_input, deadline_s=spec.deadline_s, progress_message_id=progress_id,
        price=price, agreed=agreed, free_per_day=charge.free_per_day,
        kie_credits=charge.quote.kie_credits if charge.quote else None, epoch=flood_control.send_epoch.get(),
        max_active=deps.max_active_jobs, queue_length=queue_length, expected=expected,
        request_message_id=request_message_id))
    match creation:
        case Created(job=job):
            crashpoint("after_job_insert")
            deps.metrics.jobs_created.labels(spec.id).inc()
            deps.notify_job(job.id)
        case Existing(job=job):
            deps.notify_job(job.id)
        case Insufficient(price=short_price, available=available):
            words, markup = short_of_credits(lang, short_price, available)
            await _instead_of_progress(context, chat_id, progress_id, words, markup)
            return Launch.SHORT
        case QueueFull(waiting=waiting):
            # Another of the user's chats filled the queue meanwhile: nothing was held.
            await _instead_of_progress(context, chat_id, progress_id, text(lang, "queue_full", waiting=waiting))
            return Launch.BUSY
        case Repriced():
            # Its last free generation went to another of the user's chats meanwhile: nothing was
            # held; the caller asks for the price instead.
            await _instead_of_progress(context, chat_id, progress_id, None)
            return Launch.REPRICED
        case NotLeading():
            flood_control.leave_update(flood_control.Leave.DEPOSED, "the job was not created: this term ended")
            return Launch.LEFT
    return Launch.STARTED


async def send_progress(context: ContextTypes.DEFAULT_TYPE, chat_id: int, lang: str, words: str, request_key: str,
                        request_message_id: int | None) -> int | None:
    """Send the progress message, with Cancel carrying the request key (it works on the job
    made next); returns its id, or None when Telegram may show it but its answer never came (a
    lost answer, a reset after sending). The job is made all the same then: the "starting…"
    Telegram shows is its progress message, whose Cancel works, though it is never edited (its
    id is unknown) and the result or a failure notice comes as a new message; a second
    "starting…" is not sent. A send Telegram did not make (a 5xx, a long 429, a refused
    connection) raises: nothing is done, and the apology's "try again" is true."""
    try:
        progress = await context.bot.send_message(
            chat_id, words,
            reply_markup=keyboard(control_buttons(lang, job_buttons.Control.CANCEL, request_key=request_key)),
            reply_parameters=group_reply(chat_id, request_message_id))
    except TelegramError as exc:
        if not may_have_been_sent(exc):
            raise
        log.warning("progress message of %s of unknown fate (%s): the job starts without one", request_key,
                    classify_send_error(exc).detail, extra={"action": "progress_unknown"})
        return None
    return progress.message_id


def may_have_been_sent(exc: TelegramError) -> bool:
    """Whether a send that raised `exc` may have been made all the same: its answer lost, the
    connection reset or timed out after the request left. Telegram's own refusals (a 5xx or a
    429 it answered, a bad request, a blocked chat) and a connection never made say it was not.
    PTB raises a 5xx as a bare NetworkError (Telegram's description), and a failure of the
    transport as a NetworkError caused by the HTTP library's error, or as TimedOut."""
    if classify_send_error(exc).outcome is not SendOutcome.UNKNOWN:
        return False
    cause = exc.__cause__
    return isinstance(exc, TimedOut) or (cause is not None and not isinstance(cause, TelegramError))


async def _instead_of_progress(context: ContextTypes.DEFAULT_TYPE, chat_id: int, progress_id: int | None,
                               words: str | None, markup: InlineKeyboardMarkup | None = None) -> None:
    """Why no job came of it (`words`; None: nothing, the caller says it): in place of the
    progress message, or as a new message when its id is unknown (the "starting…" Telegram may
    show then stays, with a Cancel that answers "gone")."""
    if progress_id is None:
        if words is not None:
            await context.bot.send_message(chat_id, words, reply_markup=markup)
    elif words is None:
        await context.bot.delete_message(chat_id, progress_id)
    else:
        await context.bot.edit_message_text(words, chat_id=chat_id, message_id=progress_id, reply_markup=markup)


def queue_length_of(deps: Deps) -> int:
    """How many of a user's generations may wait (KIEBOT_QUEUE_LENGTH)."""
    return deps.queue_length


def short_of_credits(lang: str, price: int, available: int) -> tuple[str, InlineKeyboardMarkup]:
    """The refusal for want of credits: the price, the balance, and Top up (the draft is kept)."""
    words = text(lang, "short_of_credits", price=prices.amount(lang, price), balance=prices.amount(lang, available))
    return words, wizard.markup([[(text(lang, "btn_top_up"), cd.build(cd.TopUp()))]])
