"""The dialogue: one handler per user step, in the style of PTB's examples.

Where a user is (`step`) and what they chose live in Postgres (storage.conversations), so a
restart or a new leader continues the conversation. Handlers never call KIE: they validate,
create the job through storage (committed), tell the supervisor, and reply. Every button
press is answered first; a double tap creates one job (the draft id is the idempotency key).
"""
from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from typing import Any, Callable

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes, MessageHandler, filters

from bot import callback_data as cd
from config.catalogue import Catalogue, ModelSpec
from config.texts import text
from faults import crashpoint
from storage import conversations
from storage.conversations import Conversation
from storage.db import Database
from storage.jobs import NewJob, create_job, find_job
from telemetry.metrics import Metrics

DEFAULT_MODEL = "z-image"
DEFAULT_RATIO = "1:1"
_FLAG = re.compile(r"(?:^|\s)--(ar|model)(?:=|\s+)(\S+)")
_COMMAND = re.compile(r"^/\w+(?:@\w+)?\s?")


@dataclass(frozen=True)
class Deps:
    """What handlers need, kept in application.bot_data['deps']."""

    db: Database
    catalogue: Catalogue
    metrics: Metrics
    notify_job: Callable[[int], None]


def deps_of(context: ContextTypes.DEFAULT_TYPE) -> Deps:
    return context.bot_data["deps"]  # type: ignore[no-any-return]


def install(application: Application[Any, Any, Any, Any, Any, Any], deps: Deps) -> None:
    """Register every handler of the dialogue on `application`."""
    application.bot_data["deps"] = deps
    application.add_handler(CommandHandler("start", start))
    application.add_handler(CommandHandler("imagine", imagine))
    application.add_handler(CommandHandler("cancel", cancel))
    application.add_handler(CommandHandler("help", help_command))
    application.add_handler(CallbackQueryHandler(button))
    application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, receive_prompt))
    application.add_handler(MessageHandler(filters.ALL, not_understood))
    application.add_error_handler(on_error)


def _who(update: Update, deps: Deps) -> tuple[int, int, str]:
    user, chat = update.effective_user, update.effective_chat
    assert user is not None and chat is not None
    return chat.id, user.id, conversations.user_lang(deps.db, user.id, user.language_code)


def _markup(rows: list[list[tuple[str, str]]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(t, callback_data=d) for t, d in row] for row in rows])


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/start: the menu."""
    deps = deps_of(context)
    chat_id, user_id, lang = _who(update, deps)
    conversations.clear(deps.db, chat_id, user_id)
    await context.bot.send_message(chat_id, text(lang, "welcome"), reply_markup=_markup(
        [[(text(lang, "btn_create_image"), cd.build(cd.Menu("create")))]]))


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/help: what the bot understands."""
    chat_id, _, lang = _who(update, deps_of(context))
    await context.bot.send_message(chat_id, text(lang, "help"))


async def cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/cancel: leave whatever step the user is in."""
    deps = deps_of(context)
    chat_id, user_id, lang = _who(update, deps)
    conversations.clear(deps.db, chat_id, user_id)
    await context.bot.send_message(chat_id, text(lang, "cancelled"))


async def not_understood(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Anything else (stickers, unknown commands): point to the menu."""
    if update.effective_chat is None or update.effective_user is None:
        return
    _, _, lang = _who(update, deps_of(context))
    await context.bot.send_message(update.effective_chat.id, text(lang, "not_understood"))


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Every inline button: answer the query first, then route by its data."""
    query = update.callback_query
    assert query is not None
    await query.answer()
    deps = deps_of(context)
    chat_id, user_id, lang = _who(update, deps)
    match cd.parse(query.data):
        case cd.Menu(action="create"):
            await choose_model(chat_id, user_id, lang, context)
        case cd.PickModel(model_id=model_id):
            await choose_prompt(chat_id, user_id, lang, model_id, context)
        case cd.PickRatio(draft=draft, ratio=ratio):
            await choose_ratio(chat_id, user_id, lang, draft, ratio, context)
        case _:
            await context.bot.send_message(chat_id, text(lang, "stale_button"))


async def choose_model(chat_id: int, user_id: int, lang: str, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Show the image models."""
    deps = deps_of(context)
    conversations.save(deps.db, chat_id, user_id, Conversation("choose_model"))
    rows = [[(text(lang, "model_button", title=m.title, price=m.price_credits if m.price_credits is not None else "?"),
              cd.build(cd.PickModel(m.id)))] for m in deps.catalogue.offered() if m.kind == "image"]
    await context.bot.send_message(chat_id, text(lang, "choose_model"), reply_markup=_markup(rows))


async def choose_prompt(chat_id: int, user_id: int, lang: str, model_id: str,
                        context: ContextTypes.DEFAULT_TYPE) -> None:
    """A model was picked: ask for the prompt."""
    deps = deps_of(context)
    spec = deps.catalogue.get(model_id)
    if spec is None or not spec.offered:
        await context.bot.send_message(chat_id, text(lang, "stale_button"))
        return
    conversations.save(deps.db, chat_id, user_id, Conversation("prompt", {"model": model_id}))
    limit = spec.field("prompt").max_length if spec.field("prompt") else None  # type: ignore[union-attr]
    await context.bot.send_message(chat_id, text(lang, "ask_prompt", title=spec.title, limit=limit or "∞"))


async def receive_prompt(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Text while waiting for a prompt: check it, then ask for the aspect ratio."""
    deps = deps_of(context)
    chat_id, user_id, lang = _who(update, deps)
    conv = conversations.load(deps.db, chat_id, user_id)
    spec = deps.catalogue.get(conv.data.get("model", "")) if conv.step == "prompt" else None
    if spec is None:
        await not_understood(update, context)
        return
    assert update.message is not None
    prompt = update.message.text or ""
    problem = prompt_problem(lang, spec, prompt)
    if problem:
        await context.bot.send_message(chat_id, problem)
        return
    ratios = ratio_choices(spec)
    if not ratios:
        await launch(update, context, spec, {"prompt": prompt}, f"update:{update.update_id}")
        conversations.clear(deps.db, chat_id, user_id)
        return
    draft = secrets.token_hex(6)
    conversations.save(deps.db, chat_id, user_id, Conversation("ratio", {"model": spec.id, "prompt": prompt,
                                                                         "draft": draft}))
    rows = [[(r, cd.build(cd.PickRatio(draft, r))) for r in ratios[i:i + 3]] for i in range(0, len(ratios), 3)]
    await context.bot.send_message(chat_id, text(lang, "choose_ratio"), reply_markup=_markup(rows))


async def choose_ratio(chat_id: int, user_id: int, lang: str, draft: str, ratio: str,
                       context: ContextTypes.DEFAULT_TYPE) -> None:
    """The ratio button: start the job once, however often it is pressed."""
    deps = deps_of(context)
    conv = conversations.load(deps.db, chat_id, user_id)
    if conv.step != "ratio" or conv.data.get("draft") != draft:
        already = find_job(deps.db, f"draft:{draft}") is not None
        if already:
            deps.metrics.duplicates_suppressed.labels("button").inc()
        await context.bot.send_message(chat_id, text(lang, "already_started" if already else "stale_button"))
        return
    spec = deps.catalogue.get(conv.data["model"])
    if spec is None or ratio not in ratio_choices(spec):
        await context.bot.send_message(chat_id, text(lang, "stale_button"))
        return
    await start_job(context, chat_id, user_id, lang, spec,
                    {"prompt": conv.data["prompt"], "aspect_ratio": ratio}, f"draft:{draft}")
    conversations.clear(deps.db, chat_id, user_id)


async def imagine(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/imagine <prompt> [--ar W:H] [--model ID]: one-line generation."""
    deps = deps_of(context)
    chat_id, _, lang = _who(update, deps)
    assert update.message is not None
    prompt, flags = parse_imagine(update.message.text or "")
    spec = deps.catalogue.get(flags.get("model", DEFAULT_MODEL))
    if spec is None or not spec.offered:
        await context.bot.send_message(chat_id, text(lang, "unknown_model", value=flags.get("model")))
        return
    if not prompt:
        await context.bot.send_message(chat_id, text(lang, "imagine_usage", ratios=", ".join(ratio_choices(spec))))
        return
    problem = prompt_problem(lang, spec, prompt)
    ratio = flags.get("ar", DEFAULT_RATIO)
    if not problem and ratio_choices(spec) and ratio not in ratio_choices(spec):
        problem = text(lang, "bad_ratio", value=ratio, title=spec.title, ratios=", ".join(ratio_choices(spec)))
    if problem:
        await context.bot.send_message(chat_id, problem)
        return
    given = {"prompt": prompt, **({"aspect_ratio": ratio} if ratio_choices(spec) else {})}
    await launch(update, context, spec, given, f"update:{update.update_id}")


async def launch(update: Update, context: ContextTypes.DEFAULT_TYPE, spec: ModelSpec, given: dict[str, Any],
                 request_key: str) -> None:
    chat_id, user_id, lang = _who(update, deps_of(context))
    await start_job(context, chat_id, user_id, lang, spec, given, request_key)


async def start_job(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int, lang: str, spec: ModelSpec,
                    given: dict[str, Any], request_key: str) -> None:
    """Create the job (committed) with its progress message, then wake the supervisor."""
    deps = deps_of(context)
    existing = find_job(deps.db, request_key)
    if existing is not None:
        if request_key.startswith("draft:"):      # a second tap on the same button
            await context.bot.send_message(chat_id, text(lang, "already_started"))
        deps.notify_job(existing.id)               # else: this very update, handled again after a crash
        return
    job_input = spec.with_defaults(given)
    progress = await context.bot.send_message(chat_id, text(lang, "progress_queued", title=spec.title))
    job, created = create_job(deps.db, NewJob(
        request_key=request_key, chat_id=chat_id, user_id=user_id, lang=lang, model=spec.id,
        input=job_input, deadline_s=spec.deadline_s, progress_message_id=progress.message_id))
    if created:
        crashpoint("after_job_insert")
        deps.metrics.jobs_created.labels(spec.id).inc()
    deps.notify_job(job.id)


def parse_imagine(message: str) -> tuple[str, dict[str, str]]:
    """Split `/imagine[@bot] <prompt> [--ar W:H] [--model ID]` into the prompt as typed and flags."""
    rest = _COMMAND.sub("", message, count=1)
    flags = {m.group(1): m.group(2) for m in _FLAG.finditer(rest)}
    return _FLAG.sub("", rest).strip(), flags


def ratio_choices(spec: ModelSpec) -> list[str]:
    field = spec.field("aspect_ratio")
    return [str(v) for v in field.enum] if field and field.enum else []


def prompt_problem(lang: str, spec: ModelSpec, prompt: str) -> str | None:
    """A plain-language reason the prompt cannot be used, or None."""
    if not prompt.strip():
        return text(lang, "prompt_empty")
    field = spec.field("prompt")
    if field and field.max_length is not None and len(prompt) > field.max_length:
        return text(lang, "prompt_too_long", length=len(prompt), title=spec.title, limit=field.max_length)
    return None


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the traceback (never a secret) and apologise in plain language."""
    logging.getLogger(__name__).error("handler failed", exc_info=context.error, extra={"action": "handler_error"})
    if isinstance(update, Update) and update.effective_chat is not None:
        lang = "ru" if (update.effective_user and (update.effective_user.language_code or "").startswith("ru")) else "en"
        await context.bot.send_message(update.effective_chat.id, text(lang, "error_apology"))
