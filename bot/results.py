"""After a result: its buttons (regenerate, edit the prompt, original quality, resend), and the
commands that look back (/history) or change the user's settings (/lang). Regenerate starts a
free generation at once and shows a paid one's price for confirmation first."""
from __future__ import annotations

from telegram import Update
from telegram.ext import ContextTypes

from actors.job_state import JobState
from bot import callback_data as cd
from bot import media, wizard
from bot.context import deps_of, who
from bot.launch import Launch, start_job
from config.texts import LANGS, text
from storage import conversations
from storage.jobs import Job, get_job, recent_jobs

HISTORY_SIZE = 10
STATE_WORDS = {JobState.UNDELIVERABLE: "state_undeliverable", JobState.CANCELLED: "state_cancelled",
               JobState.DELIVERY_UNKNOWN: "state_undeliverable"}


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
    """/lang: English or Russian."""
    chat_id, _, lang = who(update, deps_of(context))
    rows = [[("English", cd.build(cd.Lang("en"))), ("Русский", cd.build(cd.Lang("ru")))]]
    await context.bot.send_message(chat_id, text(lang, "lang_choose"), reply_markup=wizard.markup(rows))


async def set_lang(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int, code: str) -> None:
    lang = code if code in LANGS else "en"
    conversations.set_lang(deps_of(context).db, user_id, lang)
    await context.bot.send_message(chat_id, text(lang, "lang_set"), reply_markup=wizard.markup(wizard.main_menu(lang)))


async def job_action(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int, lang: str,
                     action: cd.JobAction, query_id: str) -> None:
    """The buttons under a result or a failure notice."""
    deps = deps_of(context)
    job = get_job(deps.db, action.job_id)
    spec = deps.catalogue.get(job.model) if job else None
    runs_again = action.action in ("regen", "edit")
    if job is None or job.user_id != user_id or spec is None or (runs_again and not deps.pricing.offered(spec)):
        await context.bot.send_message(chat_id, text(lang, "job_gone"))
        return
    match action.action:
        case "regen":       # free: at once; paid: confirm the price first
            key = f"regen:{query_id}"
            if await start_job(context, chat_id, user_id, lang, spec, dict(job.input), key) is Launch.REPRICED:
                await wizard.confirm_draft(context, chat_id, user_id, lang, spec, dict(job.input), key)
        case "edit":
            await wizard.start_model(context, chat_id, user_id, lang, spec, preset=dict(job.input), ask="prompt")
        case "orig":
            for url in job.result_urls or []:
                await media.send_or_link(context.bot, chat_id, "document", url)
        case "resend":
            sources = job.result_file_ids or job.result_urls or []
            for source in sources:
                await media.send_or_link(context.bot, chat_id, spec.result_kind, source)
        case _:
            await context.bot.send_message(chat_id, text(lang, "stale_button"))


