"""After a result: its buttons (regenerate, edit the prompt, original quality, create another,
resend), and the commands that look back (/history) or change the user's settings (/lang ru|en).
Regenerate starts a free generation at once and shows a paid one's price for confirmation
first; Create another reopens the same model with the last choices. A result's buttons are its
requester's: anyone else's press (in a group) is answered with a toast. A regenerated job answers
the same request message as the job it repeats (else the message pressed), so in a group its
result replies there too."""
from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.ext import ContextTypes

from actors.job_state import JobState
from bot import callback_data as cd
from bot import media, questions, wizard
from bot.button_answer import Tap
from bot.context import deps_of, who
from bot.launch import Launch, start_job
from bot.screens import show
from bot.telling import OnFailure, tell
from config.catalogue import ModelSpec
from config.texts import LANGS, text
from storage import conversations
from storage.jobs import Job, get_job, recent_jobs

HISTORY_SIZE = 10
ACTIONS = frozenset({"regen", "edit", "again", "orig", "resend"})
RUNS_AGAIN = frozenset({"regen", "edit", "again"})
STATE_WORDS = {JobState.UNDELIVERABLE: "state_undeliverable", JobState.CANCELLED: "state_cancelled",
               JobState.DELIVERY_UNKNOWN: "state_undeliverable", JobState.QUEUED: "state_queued",
               JobState.ABANDONED: "state_abandoned"}


async def history(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/history: recent jobs with their state; finished results can be sent again."""
    deps = deps_of(context)
    chat_id, user_id, lang = who(update, deps)
    jobs = recent_jobs(deps.db, user_id, HISTORY_SIZE)
    if not jobs:
        await context.bot.send_message(chat_id, text(lang, "history_empty"))
        return
    lines, buttons = [text(lang, "history_title")], []
    for job in jobs:
        spec = deps.catalogue.get(job.model)
        state = text(lang, state_word(job))
        prompt = str(job.input.get("prompt") or "")[:60]
        lines.append(text(lang, "history_line", id=job.id, name=spec.name(lang) if spec else job.model,
                          state=state, prompt=prompt))
        if job.state is JobState.DELIVERED and job.succeeded:
            buttons.append((text(lang, "btn_resend", id=job.id), cd.build(cd.JobAction("resend", job.id))))
    rows = [buttons[i:i + 3] for i in range(0, len(buttons), 3)]
    await context.bot.send_message(chat_id, "\n".join(lines), reply_markup=wizard.markup(rows) if rows else None)


def state_word(job: Job) -> str:
    if job.state is JobState.DELIVERED:
        return "state_delivered" if job.succeeded else "state_failed"
    return STATE_WORDS.get(job.state, "state_running")


async def choose_lang(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/lang ru|en switches at once; /lang alone (or an unknown code) offers the two as buttons."""
    deps = deps_of(context)
    chat_id, user_id, lang = who(update, deps)
    wanted = (context.args or [""])[0].lower()
    if wanted in LANGS:
        await set_lang(context, chat_id, user_id, wanted)
        return
    rows = [[("English", cd.build(cd.Lang("en"))), ("Русский", cd.build(cd.Lang("ru")))]]
    await context.bot.send_message(chat_id, text(lang, "lang_choose"), reply_markup=wizard.markup(rows))


async def set_lang(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int, code: str,
                   replace: int | None = None) -> None:
    """Remember the user's language and show the menu in it (in place of message `replace`)."""
    deps = deps_of(context)
    lang = code if code in LANGS else "en"
    conversations.set_lang(deps.db, user_id, lang)
    menu = wizard.main_menu(lang, wizard.recent_models(deps, user_id))
    # Set is set: handled again, the update sets it once more and says the same.
    await tell(show(context.bot, chat_id, text(lang, "lang_set"), menu, replace=replace), "the language answer",
               OnFailure.AGAIN)


async def job_action(context: ContextTypes.DEFAULT_TYPE, tap: Tap, action: cd.JobAction) -> None:
    """The buttons under a result or a failure notice; only the job's requester may press them."""
    deps = deps_of(context)
    chat_id, user_id, lang = tap.chat_id, tap.user_id, tap.lang
    job = get_job(deps.db, action.job_id)
    spec = deps.catalogue.get(job.model) if job else None
    if action.action not in ACTIONS:
        await tap.answer("toast_stale")
        return
    if job is None or spec is None or (action.action in RUNS_AGAIN and not deps.pricing.offered(spec)):
        await tap.answer("job_gone")
        return
    if job.user_id != user_id:
        await tap.answer("toast_someone_elses")
        return
    await tap.answer()
    match action.action:
        case "regen":       # free: at once; paid: confirm the price first
            key = f"regen:{tap.query.id}"
            request = job.request_message_id if job.chat_id == chat_id and job.request_message_id else tap.message_id
            if await start_job(context, chat_id, user_id, lang, spec, dict(job.input), key,
                               request_message_id=request) is Launch.REPRICED:
                await wizard.confirm_draft(context, chat_id, user_id, lang, spec, dict(job.input), key,
                                           request_message=request)
        case "edit":
            await wizard.start_model(context, chat_id, user_id, lang, spec, preset=dict(job.input), ask="prompt")
        case "again":
            await create_another(context, tap, job)
        case "orig":
            for url in job.result_urls or []:
                await media.send_or_link(context.bot, chat_id, "document", url)
        case "resend":
            sources = job.result_file_ids or job.result_urls or []
            for source in sources:
                await media.send_or_link(context.bot, chat_id, spec.result_kind, source)


async def create_another(context: ContextTypes.DEFAULT_TYPE, tap: Tap, job: Job | None) -> None:
    """Create another: the same model again, its card and first question, with the last choices
    kept (ratio, duration, voice…) and what makes a new one (prompt, files) asked afresh. Without
    `job`, the user's latest in this chat; the main menu when there is none."""
    deps = deps_of(context)
    if job is None:
        job = next((j for j in recent_jobs(deps.db, tap.user_id, HISTORY_SIZE) if j.chat_id == tap.chat_id), None)
    spec = deps.catalogue.get(job.model) if job is not None else None
    if job is None or spec is None or not deps.pricing.offered(spec):
        await show(context.bot, tap.chat_id, text(tap.lang, "welcome"),
                   wizard.main_menu(tap.lang, wizard.recent_models(deps, tap.user_id)))
        return
    await wizard.start_model(context, tap.chat_id, tap.user_id, tap.lang, spec, preset=choices_kept(spec, job.input))


def choices_kept(spec: ModelSpec, given: dict[str, Any]) -> dict[str, Any]:
    """The settings of a job's input (choices, yes/no, numbers), without its content (prompt,
    text, files): what Create another starts from."""
    return {f.name: given[f.name] for f in spec.inputs if f.name in given
            and (questions.choice_values(f) or f.type in ("integer", "number"))}


