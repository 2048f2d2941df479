"""The user's controls over their own jobs: /cancel, and the Cancel and Stop waiting buttons on
a job's progress message (bot/job_buttons.py).

A handler records what the user asked in the job's row (storage.jobs.request_stop, fenced by
the intake's epoch, so that whichever leader runs the job honours it) and tells the job's actor,
which decides: a job KIE does not have yet is cancelled; KIE cannot stop a task it has, so for
one it has the progress message offers to stop waiting, and stopping waiting ends the job and
throws its result away. The outcome, and what it did to the money, is shown on the job's own
progress message (bot/presenter.py); the handler only answers: a toast for a button, one line
for /cancel ("Nothing to cancel" when there is nothing). It never calls KIE.

bot/dialogue.py routes here: `handlers()` are registered before its own (`/cancel`, and
callback data matching job_buttons.PATTERN).
"""
from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, ContextTypes

from actors.job_state import STOPPABLE
from actors.job_state import JobState as S
from actors.outcomes import StopRequest
from bot import flood_control, job_buttons
from bot.button_answer import answer_button
from bot.context import deps_of, who
from bot.telling import OnFailure, tell
from config.texts import text
from storage import conversations
from storage.conversations import Step
from storage.jobs import Job, active_jobs, find_job, get_job, request_stop


def handlers() -> list[BaseHandler[Update, Any, Any]]:
    """The PTB handlers of the job controls, to register before the dialogue's own."""
    return [CommandHandler("cancel", cancel_command),
            CallbackQueryHandler(on_press, pattern=job_buttons.PATTERN)]


async def cancel_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/cancel: leave the current step, and ask every job of the user in this chat that can
    still be stopped to stop (each one's progress message shows what came of it)."""
    deps = deps_of(context)
    chat_id, user_id, lang = who(update, deps)
    left_step = conversations.load(deps.db, chat_id, user_id).step is not Step.IDLE
    if left_step:
        conversations.clear(deps.db, chat_id, user_id)
    asked = 0
    for job in active_jobs(deps.db, user_id):
        if job.chat_id != chat_id or job.state not in STOPPABLE:
            continue
        stopped = request_stop(deps.db, job.id, StopRequest.CANCEL, flood_control.send_epoch.get())
        if stopped is None:         # this instance no longer leads: the next leader does it all
            flood_control.leave_update(flood_control.Leave.DEPOSED, "the cancel was refused: this term ended")
            return
        if stopped.state in STOPPABLE:
            deps.cancel_job(job.id)
            asked += 1
    if asked:
        words = text(lang, "cancel_requested_one") if asked == 1 else text(lang, "cancel_requested_many", count=asked)
    else:
        words = text(lang, "cancel_left_step" if left_step else "nothing_to_cancel")
    # Asked is asked: each job's progress message shows what came of it.
    await tell(context.bot.send_message(chat_id, words), "the /cancel answer", OnFailure.BEST_EFFORT)


async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Cancel or Stop waiting on a progress message: record it, tell the job's actor, and answer
    with a toast (nothing is sent to the chat: the progress message itself changes)."""
    query = update.callback_query
    assert query is not None
    deps = deps_of(context)
    _, user_id, lang = who(update, deps)
    press = job_buttons.parse(query.data)
    job: Job | None = None
    if press is not None:
        job = get_job(deps.db, press.job_id) if press.job_id is not None else find_job(deps.db, press.request_key or "")
    if press is None or job is None:
        await answer_button(query, text(lang, "toast_gone"))
        return
    if job.user_id != user_id:
        await answer_button(query, text(lang, "toast_not_yours"))
        return
    kind = StopRequest.CANCEL if press.control is job_buttons.Control.CANCEL else StopRequest.STOP_WAITING
    if job.state in STOPPABLE:
        stopped = request_stop(deps.db, job.id, kind, flood_control.send_epoch.get())
        if stopped is None:         # the next leader handles (and answers) this press again
            flood_control.leave_update(flood_control.Leave.DEPOSED, "the stop was refused: this term ended")
            return
        job = stopped
        if job.state in STOPPABLE:
            deps.cancel_job(job.id)
    await answer_button(query, text(lang, toast_for(job, kind)))


def toast_for(job: Job, kind: StopRequest) -> str:
    """The texts key of the answer to a press, from the job's state once the request is recorded."""
    if job.state in (S.QUEUED, S.CREATED):
        return "toast_cancelling"
    if job.state in (S.SUBMITTING, S.SUBMITTED):
        return "toast_stopping" if kind is StopRequest.STOP_WAITING else "toast_cannot_stop"
    if job.state in (S.CANCELLED, S.ABANDONED):
        return "toast_already_stopped"
    if job.terminal:
        return "toast_finished"
    return "toast_on_its_way"
