"""The dialogue: commands, and the routing of every button and message to its step.

Where a user is (`Step`) and what they chose (`Draft`) live in Postgres (storage.conversations),
so a restart or a new leader continues the conversation. Handlers never call KIE: they
validate, create the job through storage (committed), tell the supervisor, and reply. Every
button press is answered first, best effort (bot.button_answer: a late or repeated answer is
refused by Telegram, and the press still counts); a double tap creates one job (the draft id is
the idempotency key). A free generation starts at once; a paid one starts only from a
confirmation that showed its price (bot.wizard.confirm), and money has its own handlers
(bot.balance, bot.payments).
"""
from __future__ import annotations

import logging
import re
from typing import Any

from telegram import Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    PreCheckoutQueryHandler,
    filters,
)

from actors.job_state import JobState
from bot import admin, balance, payments, prices, referral, results, wizard
from bot import callback_data as cd
from bot.button_answer import answer_button
from bot.context import Deps, deps_of, who
from bot.launch import Launch, start_job
from config.catalogue import InputField, ModelSpec
from config.texts import text
from kie.uploads import TelegramFile
from storage import conversations, ledger
from storage.conversations import Conversation, Step
from storage.jobs import active_jobs, find_job

log = logging.getLogger(__name__)

DEFAULT_MODEL = "z-image"
DEFAULT_RATIO = "1:1"
_FLAG = re.compile(r"(?:^|\s)--(ar|model)(?:=|\s+)(\S+)")
_COMMAND = re.compile(r"^/\w+(?:@\w+)?\s?")


def install(application: Application[Any, Any, Any, Any, Any, Any], deps: Deps) -> None:
    """Register every handler of the dialogue on `application`."""
    application.bot_data["deps"] = deps
    for name, handler in (("start", start), ("imagine", imagine), ("cancel", cancel), ("help", help_command),
                          ("models", models), ("history", results.history), ("lang", results.choose_lang),
                          ("balance", balance.balance), ("buy", payments.buy), ("stats", admin.stats),
                          ("refund", admin.refund)):
        application.add_handler(CommandHandler(name, handler))
    application.add_handler(CallbackQueryHandler(button))
    application.add_handler(PreCheckoutQueryHandler(payments.pre_checkout))
    application.add_handler(MessageHandler(filters.SUCCESSFUL_PAYMENT, payments.paid))
    application.add_handler(MessageHandler(filters.StatusUpdate.REFUNDED_PAYMENT, payments.refunded))
    application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, receive_text))
    media = filters.PHOTO | filters.VIDEO | filters.AUDIO | filters.VOICE | filters.Document.ALL | filters.ANIMATION
    application.add_handler(MessageHandler(media, receive_media))
    application.add_handler(MessageHandler(filters.ALL, not_understood))
    application.add_error_handler(on_error)


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/start: the main menu, by category; `/start ref_<code>` also remembers who invited the
    user (a bad code, oneself or a loop is ignored without a word)."""
    deps = deps_of(context)
    chat_id, user_id, lang = who(update, deps)
    conversations.clear(deps.db, chat_id, user_id)
    welcome = text(lang, "welcome")
    referrer = referral.referrer_in(context.args)
    if referrer is not None and ledger.record_referral(deps.db, user_id, referrer) and deps.pricing.referred_bonus:
        welcome += "\n\n" + text(lang, "referred", bonus=prices.amount(lang, deps.pricing.referred_bonus))
    await context.bot.send_message(chat_id, welcome, reply_markup=wizard.markup(wizard.main_menu(lang)))


async def models(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/models: browse the catalogue."""
    await start(update, context)


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/help: what the bot understands."""
    chat_id, _, lang = who(update, deps_of(context))
    await context.bot.send_message(chat_id, text(lang, "help"))


async def cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/cancel: leave any step, and cancel a job that has not been submitted yet."""
    deps = deps_of(context)
    chat_id, user_id, lang = who(update, deps)
    conversations.clear(deps.db, chat_id, user_id)
    for job in active_jobs(deps.db, user_id):
        if job.state is JobState.CREATED:
            deps.cancel_job(job.id)
    await context.bot.send_message(chat_id, text(lang, "cancelled"))


async def not_understood(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Anything else (stickers, unknown commands): point to the menu."""
    if update.effective_chat is None or update.effective_user is None:
        return
    _, _, lang = who(update, deps_of(context))
    await context.bot.send_message(update.effective_chat.id, text(lang, "not_understood"))


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Every inline button: answer the query first (best effort), then route by its data."""
    query = update.callback_query
    assert query is not None
    await answer_button(query)
    deps = deps_of(context)
    chat_id, user_id, lang = who(update, deps)
    data = cd.parse(query.data)
    match data:
        case cd.Menu():
            conversations.clear(deps.db, chat_id, user_id)
            await context.bot.send_message(chat_id, text(lang, "welcome"),
                                           reply_markup=wizard.markup(wizard.main_menu(lang)))
        case cd.Category(category=category, page=page) if category in wizard.CATEGORIES:
            await wizard.show_models(context, chat_id, lang, category, page)
        case cd.PickModel(model_id=model_id) if (spec := deps.catalogue.get(model_id)) and deps.pricing.offered(spec):
            await wizard.start_model(context, chat_id, user_id, lang, spec)
        case cd.TopUp():
            await payments.offer_packages(context, chat_id, lang)
        case cd.JobAction():
            await results.job_action(context, chat_id, user_id, lang, data, query.id)
        case cd.Lang(code=code):
            await results.set_lang(context, chat_id, user_id, code)
        case cd.Choose() | cd.Skip() | cd.MoreOptions() | cd.PickOption() | cd.Generate():
            await draft_button(context, chat_id, user_id, lang, data)
        case _:
            await context.bot.send_message(chat_id, text(lang, "stale_button"))


async def draft_button(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int, lang: str,
                       data: cd.Choose | cd.Skip | cd.MoreOptions | cd.PickOption | cd.Generate) -> None:
    """A button of the wizard; it belongs to one draft, and only the current draft counts."""
    deps = deps_of(context)
    conv = conversations.load(deps.db, chat_id, user_id)
    draft = conv.draft
    spec = deps.catalogue.get(draft.model) if conv.step is not Step.IDLE else None
    if spec is None or draft.id != data.draft:
        already = find_job(deps.db, f"draft:{data.draft}") is not None
        if already:
            deps.metrics.duplicates_suppressed.labels("button").inc()
        await context.bot.send_message(chat_id, text(lang, "already_started" if already else "stale_button"))
        return
    match data:
        case cd.Choose(field=index, value=value) if index < len(spec.inputs):
            field = spec.inputs[index]
            choices = [True, False] if field.type == "boolean" else list(field.enum or [])
            if value >= len(choices):
                await context.bot.send_message(chat_id, text(lang, "stale_button"))
                return
            draft.answers[field.name] = choices[value]
            if conv.step is Step.CONFIRM:
                await generate(context, chat_id, user_id, lang, spec, conv, data.price)
            elif draft.optional:
                await wizard.confirm(context, chat_id, user_id, lang, spec, conv)
            else:
                await wizard.advance(context, chat_id, user_id, lang, spec, conv)
        case cd.Skip():
            await (wizard.confirm if draft.optional else wizard.advance)(
                context, chat_id, user_id, lang, spec, conv)
        case cd.MoreOptions():
            await wizard.more_options(context, chat_id, lang, spec, conv)
        case cd.PickOption(field=index) if index < len(spec.inputs):
            await wizard.ask_field(context, chat_id, user_id, lang, spec, conv, spec.inputs[index], optional=True)
        case cd.Generate(price=price):
            await generate(context, chat_id, user_id, lang, spec, conv, price)
        case _:
            await context.bot.send_message(chat_id, text(lang, "stale_button"))


def asked(update: Update, context: ContextTypes.DEFAULT_TYPE) -> tuple[
        int, int, str, Conversation, ModelSpec | None, InputField | None]:
    """Who wrote, their conversation, and the model and field the wizard is asking, if any."""
    deps = deps_of(context)
    chat_id, user_id, lang = who(update, deps)
    conv = conversations.load(deps.db, chat_id, user_id)
    spec = deps.catalogue.get(conv.draft.model) if conv.step is Step.WIZARD else None
    field = spec.field(conv.draft.asking) if spec and conv.draft.asking else None
    return chat_id, user_id, lang, conv, spec, field


async def receive_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Text while the wizard waits for a typed answer."""
    chat_id, user_id, lang, conv, spec, field = asked(update, context)
    assert update.message is not None
    if spec is None or field is None or field.type == "boolean" or field.enum:
        await not_understood(update, context)
        return
    value, problem = wizard.parse_answer(lang, spec, field, update.message.text or "",
                                      conv.draft.answers.get(field.name))
    if problem:
        await context.bot.send_message(chat_id, problem)
        return
    await accept_answer(context, chat_id, user_id, lang, spec, conv, field.name, value)


async def receive_media(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A photo, video, audio or file while the wizard waits for a media input."""
    chat_id, user_id, lang, conv, spec, field = asked(update, context)
    assert update.message is not None
    upload = wizard.new_message_media(update.message)
    if spec is None or field is None or not field.media or upload is None:
        await not_understood(update, context)
        return
    kind, file_id = upload
    wanted = str(field.media.get("kind") or "file")
    if wanted in ("image", "video", "audio") and kind not in (wanted, "file"):
        what = text(lang, wizard.MEDIA_WORD.get(wanted, "media_file"))
        await context.bot.send_message(chat_id, text(lang, "wrong_media", field=wizard.label(spec, field), what=what))
        return
    value: Any = TelegramFile(file_id).to_json()
    if field.type == "array-of-url":
        value = [*(conv.draft.answers.get(field.name) or []), value]
    await accept_answer(context, chat_id, user_id, lang, spec, conv, field.name, value)


async def accept_answer(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int, lang: str, spec: ModelSpec,
                        conv: Conversation, name: str, value: Any) -> None:
    conv.draft.answers[name] = value
    field = spec.field(name)
    assert field is not None
    if field.type == "array-of-url" and len(value) < (field.max_items or 1):
        await wizard.ask_field(context, chat_id, user_id, lang, spec, conv, field,
                               header=text(lang, "got_item", count=len(value)), optional=conv.draft.optional)
    elif conv.draft.optional:
        await wizard.confirm(context, chat_id, user_id, lang, spec, conv)
    else:
        await wizard.advance(context, chat_id, user_id, lang, spec, conv)


async def generate(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int, lang: str, spec: ModelSpec,
                   conv: Conversation, agreed: int | None) -> None:
    """A start button of the confirmation: the job, once, at the price the button carries (a
    button from before prices carries none: it starts only what is free). A job that now costs
    more is confirmed again; one refused (busy, short of credits, bad input) keeps its draft."""
    deps = deps_of(context)
    launch = await start_job(context, chat_id, user_id, lang, spec, conv.draft.answers, f"draft:{conv.draft.id}",
                             agreed=agreed or 0)
    match launch:
        case Launch.STARTED:
            conversations.clear(deps.db, chat_id, user_id)
        case Launch.REPRICED:
            header = text(lang, "price_changed") if agreed is not None else ""
            await wizard.confirm(context, chat_id, user_id, lang, spec, conv, header=header)
        case Launch.LEFT:
            pass            # the next leader handles this press again
        case _:
            conversations.save(deps.db, chat_id, user_id, conv)


async def imagine(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/imagine <prompt> [--ar W:H] [--model ID]: one-line generation."""
    deps = deps_of(context)
    chat_id, user_id, lang = who(update, deps)
    assert update.message is not None
    prompt, flags = parse_imagine(update.message.text or "")
    spec = deps.catalogue.get(flags.get("model", DEFAULT_MODEL))
    if spec is None or not deps.pricing.offered(spec) or spec.field("prompt") is None:
        await context.bot.send_message(chat_id, text(lang, "unknown_model", value=flags.get("model")))
        return
    ratios = [str(v) for v in (spec.field("aspect_ratio").enum or [])] if spec.field("aspect_ratio") else []  # type: ignore[union-attr]
    if not prompt:
        await context.bot.send_message(chat_id, text(lang, "imagine_usage", ratios=", ".join(ratios)))
        return
    _, problem = wizard.parse_answer(lang, spec, spec.field("prompt"), prompt, None)  # type: ignore[arg-type]
    ratio = flags.get("ar", DEFAULT_RATIO if DEFAULT_RATIO in ratios else (ratios[0] if ratios else ""))
    if not problem and ratios and ratio not in ratios:
        problem = text(lang, "bad_ratio", value=ratio, title=spec.name(lang), ratios=", ".join(ratios))
    if problem:
        await context.bot.send_message(chat_id, problem)
        return
    given = {"prompt": prompt, **({"aspect_ratio": ratio} if ratios else {})}
    missing = [f for f in spec.required_fields if f.name not in spec.with_defaults(given)]
    if missing:     # a model that needs more than a prompt: continue in the wizard
        await wizard.start_model(context, chat_id, user_id, lang, spec, preset=given)
        return
    key = f"update:{update.update_id}"
    if await start_job(context, chat_id, user_id, lang, spec, given, key) is Launch.REPRICED:
        await wizard.confirm_draft(context, chat_id, user_id, lang, spec, given, key)    # paid: confirm first


def parse_imagine(message: str) -> tuple[str, dict[str, str]]:
    """Split `/imagine[@bot] <prompt> [--ar W:H] [--model ID]` into the prompt as typed and flags."""
    rest = _COMMAND.sub("", message, count=1)
    flags = {m.group(1): m.group(2) for m in _FLAG.finditer(rest)}
    return _FLAG.sub("", rest).strip(), flags


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the traceback (never a secret) and apologise in plain language."""
    log.error("handler failed", exc_info=context.error, extra={"action": "handler_error"})
    if isinstance(update, Update) and update.effective_chat is not None:
        telegram_lang = update.effective_user.language_code if update.effective_user else None
        lang = "ru" if (telegram_lang or "").startswith("ru") else "en"
        await context.bot.send_message(update.effective_chat.id, text(lang, "error_apology"))
