"""The dialogue: commands, and the routing of every button and message to its step.

Where a user is (`Step`) and what they chose (`Draft`) live in Postgres (storage.conversations),
so a restart or a new leader continues the conversation. Handlers never call KIE: they
validate, create the job through storage (committed), tell the supervisor, and reply. Every
button press is answered once, best effort (bot.button_answer): silently when it does
something, with a short toast when it is stale, repeated or someone else's, never with a new
message; a finished step's keyboard is put away (bot.screens). A double tap creates one job
(the draft id is the idempotency key). A free generation starts at once; a paid one starts only
from a confirmation that showed its price (bot.wizard.confirm). Money has its own handlers
(bot.balance, bot.payments), and so do the job controls (/cancel, Cancel, Stop waiting:
bot.job_controls), registered first.

Outside a flow, in a private chat, text is offered as a Z-Image prompt and a photo as an edit
with the default editing model. In a group the bot answers only what is addressed to it, and
never another bot's commands.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from telegram import Message, Update
from telegram.constants import ChatType
from telegram.error import RetryAfter, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot import (
    admin,
    balance,
    flood_control,
    imagine,
    incoming_media,
    job_controls,
    model_list,
    offers,
    payments,
    prices,
    questions,
    referral,
    results,
    screens,
    wizard,
)
from bot import callback_data as cd
from bot.button_answer import Tap
from bot.context import Deps, deps_of, who
from bot.launch import Launch, start_job
from bot.media import download_telegram_file
from bot.screens import show
from bot.telling import OnFailure, tell
from config.catalogue import InputField, ModelSpec
from config.texts import text
from kie.uploads import TelegramFile
from storage import conversations, ledger
from storage.conversations import Conversation, Draft, Step
from storage.db import DatabaseUnavailable
from storage.jobs import Job, find_job

log = logging.getLogger(__name__)

DraftButton = cd.Choose | cd.Skip | cd.MoreOptions | cd.PickOption | cd.Generate | cd.UseExample | cd.ShowConfirm


def install(application: Application[Any, Any, Any, Any, Any, Any], deps: Deps) -> None:
    """Register every handler of the dialogue on `application` (the job controls' first)."""
    application.bot_data["deps"] = deps
    for control in job_controls.handlers():
        application.add_handler(control)
    for name, handler in (("start", start), ("imagine", imagine.imagine), ("help", help_command),
                          ("models", model_list.models), ("history", results.history), ("lang", results.choose_lang),
                          ("balance", balance.balance), ("buy", payments.buy), ("stats", admin.stats),
                          ("refund", admin.refund)):
        application.add_handler(CommandHandler(name, handler))
    application.add_handler(CallbackQueryHandler(button))
    application.add_handler(MessageHandler(filters.SUCCESSFUL_PAYMENT, payments.paid))
    application.add_handler(MessageHandler(filters.StatusUpdate.REFUNDED_PAYMENT, payments.refunded))
    application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, receive_text))
    media = filters.PHOTO | filters.VIDEO | filters.AUDIO | filters.VOICE | filters.Document.ALL | filters.ANIMATION
    application.add_handler(MessageHandler(media, receive_media))
    application.add_handler(MessageHandler(filters.ALL, not_understood))
    application.add_error_handler(on_error)


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/start: the main menu (recent models, then the categories); `/start ref_<code>` also
    remembers who invited the user (a bad code, oneself or a loop is ignored without a word).

    The invitation's notice is shown while the referral is recorded and untold, not only by the
    call that recorded it: the referral stands whatever Telegram does with the welcome, so a
    welcome not sent (or of unknown fate) is said again when the update is handled again, notice included, and
    never answered with "something went wrong, try again" (which would then say no notice)."""
    deps = deps_of(context)
    chat_id, user_id, lang = who(update, deps)
    conversations.clear(deps.db, chat_id, user_id)
    welcome = text(lang, "welcome")
    referrer = referral.referrer_in(context.args)
    if referrer is not None:
        ledger.record_referral(deps.db, user_id, referrer)
    invited = (referrer is not None and bool(deps.pricing.referred_bonus)
               and ledger.referral_untold(deps.db, user_id, referrer))
    if invited:
        welcome += "\n\n" + text(lang, "referred", bonus=prices.amount(lang, deps.pricing.referred_bonus))
    await close_open_question(context, chat_id, user_id)
    shown = show(context.bot, chat_id, welcome, wizard.main_menu(lang, wizard.recent_models(deps, user_id)))
    if not invited:
        await shown
        return
    if (await tell(shown, "the welcome of an invited user", OnFailure.AGAIN)).done:
        ledger.mark_referral_told(deps.db, user_id)


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/help: what the bot does, in a few lines with examples."""
    chat_id, _, lang = who(update, deps_of(context))
    await context.bot.send_message(chat_id, text(lang, "help"))


async def not_understood(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Anything else (stickers, unknown commands): point to the menu, unless it was not meant
    for this bot (another bot's command, a group's chatter, a bot's message)."""
    message = update.effective_message
    if update.effective_chat is None or update.effective_user is None or message is None:
        return
    if not addressed_to_us(update, message, context.bot.username):
        return
    _, _, lang = who(update, deps_of(context))
    await context.bot.send_message(update.effective_chat.id, text(lang, "not_understood"))


def addressed_to_us(update: Update, message: Message, username: str) -> bool:
    """Whether a message the dialogue did not understand was meant for this bot: never one
    from a bot or a command for another bot (`/start@other_bot`); in a group, only a command
    addressed to this bot by name."""
    if update.effective_user is not None and update.effective_user.is_bot:
        return False
    words = (message.text or "").split(maxsplit=1)
    command = words[0] if words and words[0].startswith("/") else ""
    target = command.partition("@")[2]
    if target:
        return target.lower() == username.lower()
    return update.effective_chat is not None and update.effective_chat.type == ChatType.PRIVATE


def in_private(update: Update) -> bool:
    """A one-to-one chat with a person (offers are made there only)."""
    user = update.effective_user
    return (update.effective_chat is not None and update.effective_chat.type == ChatType.PRIVATE
            and user is not None and not user.is_bot)


# --- buttons -----------------------------------------------------------------------------------
async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Every inline button: routed by its data and answered once (a toast when it is stale)."""
    query = update.callback_query
    assert query is not None
    deps = deps_of(context)
    chat_id, user_id, lang = who(update, deps)
    tap = Tap(query, chat_id, user_id, lang)
    data = cd.parse(query.data)
    match data:
        case (cd.Choose() | cd.Skip() | cd.MoreOptions() | cd.PickOption() | cd.Generate() | cd.UseExample()
              | cd.ShowConfirm()):
            await draft_button(context, tap, data)
        case cd.JobAction():
            await results.job_action(context, tap, data)
        case cd.Menu(action="create"):
            await tap.answer()
            await results.create_another(context, tap, None)
        case cd.Menu(action=action):
            await tap.answer()
            conversations.clear(deps.db, chat_id, user_id)
            await close_open_question(context, chat_id, user_id)
            await show(context.bot, chat_id, text(lang, "welcome"),
                       wizard.main_menu(lang, wizard.recent_models(deps, user_id)),
                       replace=tap.message_id if action == "back" else None)
        case cd.Category(category=category, page=page) if category in wizard.CATEGORIES:
            await tap.answer()
            await wizard.show_models(context, chat_id, lang, category, page, replace=tap.message_id)
        case cd.ModelList(page=page, words=words):
            await tap.answer()
            await model_list.show_page(context, chat_id, lang, words, page, replace=tap.message_id)
        case cd.PickModel(model_id=model_id) if (spec := deps.catalogue.get(model_id)) and deps.pricing.offered(spec):
            await tap.answer()
            await close_open_question(context, chat_id, user_id)
            await wizard.start_model(context, chat_id, user_id, lang, spec, replace=tap.message_id)
        case cd.TopUp():
            await tap.answer()
            await payments.offer_packages(context, chat_id, lang)
        case cd.Lang(code=code):
            await tap.answer()
            await results.set_lang(context, chat_id, user_id, code, replace=tap.message_id)
        case _:
            await tap.answer("toast_stale")


async def draft_button(context: ContextTypes.DEFAULT_TYPE, tap: Tap, data: DraftButton) -> None:
    """A button of the wizard. It belongs to one draft and one step: a button of another draft,
    or of a step already passed, is answered with a toast and its keyboard put away."""
    deps = deps_of(context)
    chat_id, user_id, lang = tap.chat_id, tap.user_id, tap.lang
    conv = conversations.load(deps.db, chat_id, user_id)
    spec = deps.catalogue.get(conv.draft.model) if conv.step is not Step.IDLE else None
    refusal = stale(deps, lang, spec, conv, data)
    if refusal is not None or spec is None:
        await tap.answer(refusal or "toast_stale")
        await screens.settle(context.bot, chat_id, tap.message_id)
        return
    await tap.answer()
    opened = screens.take(context.chat_data, user_id)
    if opened is not None and opened.message_id != tap.message_id:      # left behind: put it away
        await screens.settle(context.bot, chat_id, opened.message_id)
    draft = conv.draft
    match data:
        case cd.Choose() if conv.step is Step.CONFIRM:
            await choose_and_start(context, tap, spec, conv, data)
        case cd.Choose(field=index, value=value):
            field = spec.inputs[index]
            choice = questions.choice_values(field)[value]
            question, _ = wizard.question_for(lang, spec, conv, field)
            draft.answers[field.name] = choice
            await (wizard.confirm if draft.optional else wizard.advance)(context, chat_id, user_id, lang, spec, conv)
            await put_away(context, tap, question, text(lang, "answer_chosen", field=field.label(lang),
                                                        value=questions.shown(lang, field, choice)))
        case cd.Skip(field=index):
            field = spec.inputs[index]
            question, _ = wizard.question_for(lang, spec, conv, field)
            await (wizard.confirm if draft.optional else wizard.advance)(context, chat_id, user_id, lang, spec, conv)
            if draft.optional:
                await put_away(context, tap, question, text(lang, "answer_skipped", field=field.label(lang)))
            else:                   # Done after a list of files
                await screens.settle(context.bot, chat_id, tap.message_id)
        case cd.UseExample(index=index):
            prompt = spec.field(draft.asking or "")
            assert prompt is not None
            example = wizard.examples_for(lang, spec)[index]
            question, _ = wizard.question_for(lang, spec, conv, prompt)
            await accept_answer(context, chat_id, user_id, lang, spec, conv, prompt.name, example)
            await put_away(context, tap, question, text(lang, "answer_chosen", field=prompt.label(lang), value=example))
        case cd.MoreOptions():
            await wizard.more_options(context, chat_id, lang, spec, conv, replace=tap.message_id)
        case cd.ShowConfirm():
            await wizard.confirm(context, chat_id, user_id, lang, spec, conv, replace=tap.message_id)
        case cd.PickOption(field=index):
            await wizard.ask_field(context, chat_id, user_id, lang, spec, conv, spec.inputs[index], optional=True,
                                   replace=tap.message_id)
        case cd.Generate(price=price):
            await generate_and_settle(context, tap, spec, conv, price)


async def generate_and_settle(context: ContextTypes.DEFAULT_TYPE, tap: Tap, spec: ModelSpec, conv: Conversation,
                              price: int | None) -> None:
    """✅ Generate on the confirmation: it starts the job; once started, "Tap ✅ Generate to
    start." gives way to "✅ Started." and the buttons go."""
    launch = await generate(context, tap.chat_id, tap.user_id, tap.lang, spec, conv, price)
    if launch is Launch.STARTED:
        await put_away(context, tap, text(tap.lang, "confirm_generate"), text(tap.lang, "started_generate"))
    elif launch is Launch.REPRICED:     # a new confirmation with the new price is shown
        await screens.settle(context.bot, tap.chat_id, tap.message_id)


async def choose_and_start(context: ContextTypes.DEFAULT_TYPE, tap: Tap, spec: ModelSpec, conv: Conversation,
                           data: cd.Choose) -> None:
    """A final choice on the confirmation ("✅ 16:9"): it starts the job; once started, the
    confirmation keeps its text, says what was chosen and loses its buttons."""
    field = spec.inputs[data.field]
    choice = questions.choice_values(field)[data.value]
    conv.draft.answers[field.name] = choice
    launch = await generate(context, tap.chat_id, tap.user_id, tap.lang, spec, conv, data.price)
    if launch is Launch.STARTED:        # "Aspect ratio: choose one to start." gives way to the choice
        started = text(tap.lang, "started_choice", field=field.label(tap.lang),
                       value=questions.shown(tap.lang, field, choice))
        await put_away(context, tap, text(tap.lang, "confirm_pick_last", field=field.label(tap.lang)), started)
    elif launch is Launch.REPRICED:     # a new confirmation with the new price is shown
        await screens.settle(context.bot, tap.chat_id, tap.message_id)


async def put_away(context: ContextTypes.DEFAULT_TYPE, tap: Tap, question: str, answer: str) -> None:
    """An answered question's message: the question gives way to the answer, the buttons go."""
    await screens.settle(context.bot, tap.chat_id, tap.message_id, screens.answered(tap.text or "", question, answer))


def stale(deps: Deps, lang: str, spec: ModelSpec | None, conv: Conversation, data: DraftButton) -> str | None:
    """Why a wizard button no longer works, as a toast's texts key; None when it does. A button
    of a draft that became a job says where that job is (`started_toast`)."""
    if spec is None or conv.draft.id != data.draft:
        job = find_job(deps.db, f"draft:{data.draft}")
        if job is not None:
            deps.metrics.duplicates_suppressed.labels("button").inc()
            return started_toast(job)
        return "toast_stale"
    draft, wizard_step = conv.draft, conv.step is Step.WIZARD
    match data:
        case cd.Choose(field=index, value=value):
            if index >= len(spec.inputs) or value >= len(questions.choice_values(spec.inputs[index])):
                return "toast_stale"
            field = spec.inputs[index]
            current = draft.asking == field.name if wizard_step else final_choice(spec, draft) == field
            return None if current else "toast_stale"
        case cd.Skip(field=index):
            current = wizard_step and index < len(spec.inputs) and draft.asking == spec.inputs[index].name
            return None if current else "toast_stale"
        case cd.PickOption(field=index):
            return None if index < len(spec.inputs) and spec.inputs[index] in spec.optional_fields else "toast_stale"
        case cd.Generate():
            return None if conv.step is Step.CONFIRM else "toast_stale"
        case cd.UseExample(index=index):
            current = (wizard_step and draft.asking is not None and draft.asking == wizard.example_field(spec)
                       and index < len(wizard.examples_for(lang, spec)))
            return None if current else "toast_stale"
    return None


def started_toast(job: Job) -> str:
    """The toast for a start button pressed again, by its job's real state: still waiting or
    running ("already started"), its result delivered ("done: the result is above"), or ended
    otherwise (failed, cancelled, stopped: its message above says so)."""
    if not job.terminal:
        return "toast_started"
    return "toast_done" if job.succeeded else "toast_finished"


def final_choice(spec: ModelSpec, draft: Draft) -> InputField | None:
    """The last required field when the confirmation offers its values as start buttons."""
    last = spec.required_fields[-1] if spec.required_fields else None
    if last is None or last.name in draft.answers or not questions.choice_values(last):
        return None
    return last


# --- messages ----------------------------------------------------------------------------------
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
    """Text while the wizard waits for a typed answer; outside a flow, an offer to draw it."""
    chat_id, user_id, lang, conv, spec, field = asked(update, context)
    assert update.message is not None
    words = update.message.text or ""
    if spec is None or field is None or questions.choice_values(field):
        if conv.step is Step.IDLE and in_private(update):
            await offers.offer_prompt(context, update.update_id, chat_id, user_id, lang, words)
        else:
            await not_understood(update, context)
        return
    value, problem = wizard.parse_answer(lang, spec, field, words, conv.draft.answers.get(field.name))
    if problem:
        await context.bot.send_message(chat_id, problem)
        return
    remember_request(spec, conv, field, update.message.message_id)
    await answer_typed(context, chat_id, user_id, lang, spec, conv, field, value)


async def receive_media(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A photo, video, audio or file while the wizard waits for one, checked by what it is, by
    its bytes where it is not a photo (a PDF is no photo, whatever its name); outside a flow, an
    image is offered for editing."""
    chat_id, user_id, lang, conv, spec, field = asked(update, context)
    assert update.message is not None
    file = incoming_media.received(update.message)
    if file is None:
        await not_understood(update, context)
        return
    if spec is None or field is None or not field.media:
        if conv.step is Step.IDLE and in_private(update) and file.kind == "image":
            checked = await read_by_bytes(context, chat_id, lang, file, {})
            if checked is not None:
                caption = update.message.caption or ""
                await offers.offer_edit(context, update.update_id, chat_id, user_id, lang, checked, caption)
        else:
            await not_understood(update, context)
        return
    checked = await read_by_bytes(context, chat_id, lang, file, field.media)
    if checked is None:
        return
    file = checked
    refusal = incoming_media.refusal(file, field.media)
    if refusal is not None:
        await context.bot.send_message(chat_id, incoming_media.refusal_words(lang, field, refusal))
        return
    value: Any = TelegramFile(file.file_id).to_json()
    if field.type == "array-of-url":
        value = [*(conv.draft.answers.get(field.name) or []), value]
    remember_request(spec, conv, field, update.message.message_id)
    await answer_typed(context, chat_id, user_id, lang, spec, conv, field, value)


async def read_by_bytes(context: ContextTypes.DEFAULT_TYPE, chat_id: int, lang: str, file: incoming_media.Received,
                        wanted: dict[str, Any]) -> incoming_media.Received | None:
    """`file` judged by its bytes, read through the bot's one download path, when it is worth
    reading for a field with this media description (not a photo, not too large); None when
    Telegram would not give the file, after saying so and asking for it again."""
    if not incoming_media.worth_reading(file, wanted):
        return file
    try:
        data, _ = await download_telegram_file(context.bot, file.file_id)
    except RetryAfter:
        raise                   # the error handler leaves the update for later (flood control)
    except TelegramError as exc:
        log.warning("a file the user sent could not be read: %s", exc, extra={"action": "media_unreadable"})
        await context.bot.send_message(chat_id, text(lang, "media_unreadable"))
        return None
    return incoming_media.by_bytes(file, data)


def remember_request(spec: ModelSpec, conv: Conversation, field: InputField, message_id: int) -> None:
    """The message the job will answer (in a group its result replies to it): the typed prompt;
    for a model without one, the latest answer typed or sent."""
    prompt = wizard.example_field(spec)
    if prompt is None or field.name == prompt:
        conv.draft.request_message = message_id


async def answer_typed(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int, lang: str, spec: ModelSpec,
                       conv: Conversation, field: InputField, value: Any) -> None:
    """An answer typed or sent (not tapped): accepted, then its question, if it had buttons
    (Skip, Done, the examples), is put away showing the answer."""
    opened = screens.take(context.chat_data, user_id)
    await accept_answer(context, chat_id, user_id, lang, spec, conv, field.name, value)
    if opened is not None:
        answer = text(lang, "answer_chosen", field=field.label(lang), value=questions.shown(lang, field, value))
        body = screens.answered(opened.body, opened.question, answer) if opened.field == field.name else None
        await screens.settle(context.bot, chat_id, opened.message_id, body)


async def close_open_question(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int) -> None:
    """Leaving a flow: the question left open loses its buttons."""
    opened = screens.take(context.chat_data, user_id)
    if opened is not None:
        await screens.settle(context.bot, chat_id, opened.message_id)


async def accept_answer(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int, lang: str, spec: ModelSpec,
                        conv: Conversation, name: str, value: Any) -> None:
    """Keep an answer and go on: another item of a list, the confirmation, or the next question."""
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
                   conv: Conversation, agreed: int | None) -> Launch:
    """A start button of the confirmation: the job, once, at the price the button carries (a
    button from before prices carries none: it starts only what is free). A job that now costs
    more is confirmed again; one refused (busy, short of credits, bad input) keeps its draft."""
    deps = deps_of(context)
    launch = await start_job(context, chat_id, user_id, lang, spec, conv.draft.answers, f"draft:{conv.draft.id}",
                             agreed=agreed or 0, request_message_id=conv.draft.request_message)
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
    return launch


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the traceback (never a secret) and apologise in plain language. Except when Telegram
    asked the chat to wait longer than FloodControl waits inline: then nothing, not even an
    apology, can be said now, and the update is left for later: its chat's lane handles it
    again, from the start, once the wait is over (a handler with several messages marks each
    one done, flood_control.finish_step, so that /buy's invoices are not sent twice)."""
    if isinstance(context.error, RetryAfter):
        wait = context.error.retry_after
        flood_control.leave_update(flood_control.Leave.AGAIN_LATER, f"Telegram asked the chat to wait {wait}",
                                   wait_s=wait.total_seconds() if isinstance(wait, dt.timedelta) else float(wait))
        return
    log.error("handler failed", exc_info=context.error, extra={"action": "handler_error"})
    if isinstance(update, Update) and update.effective_chat is not None:
        await context.bot.send_message(update.effective_chat.id, text(apology_lang(update, context), "error_apology"))


def apology_lang(update: Update, context: ContextTypes.DEFAULT_TYPE) -> str:
    """The language the user chose (/lang), else Telegram's; Telegram's alone when the store,
    perhaps the very thing that failed, cannot say."""
    user = update.effective_user
    telegram_lang = user.language_code if user is not None else None
    guess = "ru" if (telegram_lang or "").startswith("ru") else "en"
    if user is None:
        return guess
    try:
        return conversations.user_lang(deps_of(context).db, user.id, telegram_lang)
    except DatabaseUnavailable:
        return guess
