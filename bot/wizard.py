"""The model wizard: categories → models (paginated, with price) → the model card with the
first question → one question per required input → confirmation → the job.

Driven entirely by the catalogue: a field's type decides how it is asked (enums and booleans
as buttons, media as an upload or a link, numbers with their range, text with its limit), so
a new model needs no code. A required enum asked last doubles as the start buttons on the
confirmation (tap "16:9" and it starts; "✅ 16:9" when it is paid). The draft (storage.conversations.Draft: model,
answers, what is being asked) is kept in the conversations table under a short id that the
buttons carry.

The confirmation is the one place a user agrees to a price: it shows the exact price of the
choices made (or "free: 2 of 3 left today"), the balance, Top up when it is short, and start
buttons carrying ✅ and the price agreed to. Paid starts elsewhere (/imagine, Regenerate) come
here as a draft at the confirmation step (`confirm_draft`), idempotent by the draft's id.
"""
from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.ext import ContextTypes

from bot import callback_data as cd
from bot import prices
from bot.context import Deps, deps_of
from config.catalogue import InputField, ModelSpec
from config.texts import text
from kie.uploads import is_upload
from storage import conversations, ledger
from storage.conversations import Conversation, Draft, Step

CATEGORIES = ("image", "image_edit", "video", "audio", "tools")
PAGE_SIZE = 8
MEDIA_WORD = {"image": "media_image", "video": "media_video", "audio": "media_audio"}
Rows = list[list[tuple[str, str]]]


def markup(rows: Rows) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(t, callback_data=d) for t, d in row] for row in rows])


def label(spec: ModelSpec, f: InputField) -> str:
    return "Prompt" if f.name == "prompt" else f.name.replace("_", " ").capitalize()


# --- menus ---------------------------------------------------------------------------------
def main_menu(lang: str) -> Rows:
    return [[(text(lang, f"cat_{c}"), cd.build(cd.Category(c, 0)))] for c in CATEGORIES]


async def show_models(context: ContextTypes.DEFAULT_TYPE, chat_id: int, lang: str, category: str, page: int) -> None:
    """One page of a category's models, each with its price."""
    deps = deps_of(context)
    models = [m for m in deps.catalogue.in_category(category) if deps.pricing.offered(m)]
    pages = max(1, math.ceil(len(models) / PAGE_SIZE))
    page = min(max(page, 0), pages - 1)
    rows: Rows = [[(f"{m.name(lang)} · {prices.list_label(lang, deps.pricing, m)}", cd.build(cd.PickModel(m.id)))]
                  for m in models[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]]
    nav = []
    if page > 0:
        nav.append((text(lang, "btn_prev"), cd.build(cd.Category(category, page - 1))))
    if page < pages - 1:
        nav.append((text(lang, "btn_next"), cd.build(cd.Category(category, page + 1))))
    rows += [nav] if nav else []
    rows.append([(text(lang, "btn_menu"), cd.build(cd.Menu("home")))])
    await context.bot.send_message(chat_id, text(lang, "models_page", category=text(lang, f"cat_{category}"),
                                                 page=page + 1, pages=pages), reply_markup=markup(rows))


# --- the wizard ----------------------------------------------------------------------------
async def start_model(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int, lang: str, spec: ModelSpec,
                      preset: dict[str, Any] | None = None, ask: str | None = None) -> None:
    """Show the model card and ask the first question (or `ask`, to edit one answer)."""
    conv = Conversation(Step.WIZARD, Draft(model=spec.id, id=secrets.token_hex(5), answers=dict(preset or {})))
    card = text(lang, "model_card", name=spec.name(lang), description=spec.description(lang),
                time=spec.typical_time_s, price=prices.card_label(lang, deps_of(context).pricing, spec))
    target = spec.field(ask) if ask else None
    if target is not None:
        conv.draft.answers.pop(target.name, None)
        await ask_field(context, chat_id, user_id, lang, spec, conv, target, header=card)
    else:
        await advance(context, chat_id, user_id, lang, spec, conv, header=card)


def next_question(spec: ModelSpec, answers: dict[str, Any]) -> InputField | None:
    """The next required field without an answer, leaving a final enum for the confirmation."""
    missing = [f for f in spec.required_fields if f.name not in answers]
    if not missing:
        return None
    if len(missing) == 1 and missing[0] == spec.required_fields[-1] and _choices(missing[0]):
        return None
    return missing[0]


async def advance(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int, lang: str, spec: ModelSpec,
                  conv: Conversation, header: str = "") -> None:
    field = next_question(spec, conv.draft.answers)
    if field is not None:
        await ask_field(context, chat_id, user_id, lang, spec, conv, field, header=header)
    else:
        await confirm(context, chat_id, user_id, lang, spec, conv, header=header)


async def ask_field(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int, lang: str, spec: ModelSpec,
                    conv: Conversation, field: InputField, header: str = "", optional: bool = False) -> None:
    conv.step, conv.draft.asking, conv.draft.optional = Step.WIZARD, field.name, optional
    conversations.save(deps_of(context).db, chat_id, user_id, conv)
    question, rows = question_for(lang, spec, conv, field)
    if optional or (field.media and field.name in conv.draft.answers):
        rows.append([(text(lang, "btn_skip" if optional else "btn_done"),
                      cd.build(cd.Skip(conv.draft.id, spec.inputs.index(field))))])
    body = f"{header}\n\n{question}" if header else question
    await context.bot.send_message(chat_id, body, reply_markup=markup(rows) if rows else None)


def question_for(lang: str, spec: ModelSpec, conv: Conversation, f: InputField) -> tuple[str, Rows]:
    """The question for one field and its buttons, by the field's type."""
    name, draft, index = label(spec, f), conv.draft.id, spec.inputs.index(f)
    choices = _choices(f)
    if choices:
        key = "ask_bool_field" if f.type == "boolean" else "ask_choice_field"
        buttons = [(_choice_label(lang, v), cd.build(cd.Choose(draft, index, i))) for i, v in enumerate(choices)]
        return text(lang, key, field=name), [buttons[i:i + 3] for i in range(0, len(buttons), 3)]
    if f.media:
        several = f.type == "array-of-url" and (f.max_items or 2) > 1
        count = text(lang, "media_count", max=f.max_items) if several else ""
        what = text(lang, MEDIA_WORD.get(str(f.media.get("kind")), "media_file"))
        return text(lang, "ask_media_field", field=name, what=what, count=count), []
    if f.type in ("integer", "number"):
        span = text(lang, "range", min=_num(f.min), max=_num(f.max)) if f.min is not None and f.max is not None else ""
        return text(lang, f"ask_{f.type}_field", field=name, range=span), []
    if f.type == "array-of-string":
        return text(lang, "ask_list_field", field=name), []
    if f.name == "prompt" and f.max_length:
        return text(lang, "ask_prompt_field", limit=f.max_length), []
    limit = text(lang, "limit_chars", limit=f.max_length) if f.max_length else ""
    return text(lang, "ask_text_field", field=name, limit=limit), []


def draft_id_for(request_key: str) -> str:
    """The draft id of a confirmation made for a request (an /imagine update, a Regenerate
    press): the same request handled again shows the same draft, so one job comes of it."""
    return hashlib.sha256(request_key.encode()).hexdigest()[:10]


async def confirm_draft(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int, lang: str,
                        spec: ModelSpec, answers: dict[str, Any], request_key: str) -> None:
    """A paid start outside the wizard (/imagine, Regenerate): its choices as a draft at the
    confirmation, which shows the price and the ✅ button."""
    conv = Conversation(Step.CONFIRM, Draft(model=spec.id, id=draft_id_for(request_key), answers=dict(answers)))
    await confirm(context, chat_id, user_id, lang, spec, conv)


async def confirm(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int, lang: str, spec: ModelSpec,
                  conv: Conversation, header: str = "") -> None:
    """Every choice, its price and the balance; ✅ Generate (or the final enum's values, each
    with ✅) starts the job at the price it carries."""
    deps = deps_of(context)
    conv.step, conv.draft.asking = Step.CONFIRM, None
    conversations.save(deps.db, chat_id, user_id, conv)
    answers, draft = conv.draft.answers, conv.draft.id
    choices = "\n".join(f"• {label(spec, f)}: {_show(answers[f.name])}" for f in spec.inputs if f.name in answers)
    job_input = spec.with_defaults(answers)
    charge = prices.charge_for(deps.db, deps.pricing, user_id, spec, job_input)
    last = spec.required_fields[-1] if spec.required_fields else None
    rows: Rows = []
    if last is not None and last.name not in answers and _choices(last):
        index = spec.inputs.index(last)
        options = [(i, v, charge.requoted(deps.pricing.quote(spec, {**job_input, last.name: v})).price)
                   for i, v in enumerate(_choices(last))]
        known = [p for _, _, p in options if p is not None]
        uniform = len({p for _, _, p in options}) == 1
        buttons = [(_start_label(lang, v, p, uniform), cd.build(cd.Choose(draft, index, i, p)))
                   for i, v, p in options if p is not None]
        rows += [buttons[i:i + 3] for i in range(0, len(buttons), 3)]
        lowest = min(known) if known else None
        money = _money_line(context, user_id, lang, charge, lowest, exact=uniform)
        action = text(lang, "confirm_pick_last", field=label(spec, last).lower()) if known else ""
    else:
        price = charge.price
        money = _money_line(context, user_id, lang, charge, price, exact=True)
        if price is not None:
            start = text(lang, "btn_generate_paid", price=prices.amount(lang, price)) if price else text(
                lang, "btn_generate")
            rows.append([(start, cd.build(cd.Generate(draft, price)))])
        action = text(lang, "confirm_generate") if price is not None else ""
    if money.short:
        rows.append([(text(lang, "btn_top_up"), cd.build(cd.TopUp()))])
    if spec.optional_fields:
        rows.append([(text(lang, "btn_more_options"), cd.build(cd.MoreOptions(draft)))])
    summary = text(lang, "confirm", name=spec.name(lang), choices=choices)
    body = "\n\n".join(p for p in (header, summary, money.words, action) if p)
    await context.bot.send_message(chat_id, body, reply_markup=markup(rows))


def _start_label(lang: str, value: Any, price: int, uniform: bool) -> str:
    """A final choice that starts the job: "16:9" when free (as before prices), "✅ 16:9" when
    paid, with its own price when the choices cost different amounts."""
    if price == 0:
        return _choice_label(lang, value)
    cost = "" if uniform else f" · {prices.amount(lang, price)}"
    return f"✅ {_choice_label(lang, value)}{cost}"


@dataclass(frozen=True)
class _Money:
    """The confirmation's money line, and whether the balance is short of the price."""

    words: str
    short: bool = False


def _money_line(context: ContextTypes.DEFAULT_TYPE, user_id: int, lang: str, charge: prices.Charge,
                price: int | None, exact: bool) -> _Money:
    """"free: 2 of 3 left today", or the price and the balance (read only for a paid job)."""
    if price is None:
        return _Money(text(lang, "confirm_no_price"))
    if price == 0:
        return _Money("🎁 " + (prices.free_note(lang, charge) or text(lang, "price_free")))
    available = ledger.wallet(deps_of(context).db, user_id).available
    cost = prices.amount(lang, price) if exact else text(lang, "price_from", price=prices.amount(lang, price))
    words = text(lang, "confirm_price", price=cost, balance=prices.amount(lang, available))
    if available < price:
        return _Money(words + "\n" + text(lang, "confirm_short"), short=True)
    return _Money(words)


async def more_options(context: ContextTypes.DEFAULT_TYPE, chat_id: int, lang: str, spec: ModelSpec,
                       conv: Conversation) -> None:
    draft, answers = conv.draft.id, conv.draft.answers
    rows = [[(f"{label(spec, f)}" + (f" ({_show(answers[f.name])})" if f.name in answers else ""),
              cd.build(cd.PickOption(draft, spec.inputs.index(f))))] for f in spec.optional_fields]
    await context.bot.send_message(chat_id, text(lang, "choose_option"), reply_markup=markup(rows))


def parse_answer(lang: str, spec: ModelSpec, f: InputField, raw: str, current: Any) -> tuple[Any, str | None]:
    """A typed value from what the user typed, or a plain-language reason it does not fit."""
    name = label(spec, f)
    span = text(lang, "range", min=_num(f.min), max=_num(f.max)) if f.min is not None and f.max is not None else ""
    value, problem = _typed(f, raw, current)
    if problem:
        return None, text(lang, problem, field=name, range=span)
    if isinstance(value, str) and not value.strip():
        return None, text(lang, "prompt_empty")
    if isinstance(value, str) and f.max_length is not None and len(value) > f.max_length:
        title = name if f.name != "prompt" else spec.name(lang)
        return None, text(lang, "prompt_too_long", length=len(value), title=title, limit=f.max_length)
    if isinstance(value, str) and f.min_length is not None and len(value) < f.min_length:
        return None, text(lang, "too_short", field=name, limit=f.min_length)
    reason = f.check(value)
    if reason and f.type in ("integer", "number"):
        return None, text(lang, f"bad_{f.type}", field=name, range=span)
    if reason:
        return None, text(lang, "bad_value", reason=reason)
    return value, None


def _typed(f: InputField, raw: str, current: Any) -> tuple[Any, str | None]:
    """What the user typed as the field's type, or the text key saying why it is not one."""
    if f.type == "integer":
        try:
            return int(raw.strip()), None
        except ValueError:
            return None, "bad_integer"
    if f.type == "number":
        try:
            number = float(raw.strip().replace(",", "."))
        except ValueError:
            return None, "bad_number"
        return (number, None) if math.isfinite(number) else (None, "bad_number")
    if f.type in ("url", "array-of-url"):
        links = raw.split()
        if not links or not all(link.startswith(("http://", "https://")) for link in links):
            return None, "bad_url"
        return (links[0] if f.type == "url" else [*(current or []), *links]), None
    if f.type == "array-of-string":
        return [part.strip() for part in raw.replace("\n", ",").split(",") if part.strip()], None
    return (raw if f.name == "prompt" else raw.strip()), None


def draft_problems(spec: ModelSpec, answers: dict[str, Any]) -> list[str]:
    """spec.validate, with uploads not yet on KIE (kie.uploads.TelegramFile) standing in as URLs."""
    def stand_in(value: Any) -> Any:
        if isinstance(value, list):
            return [stand_in(v) for v in value]
        return "https://upload.invalid/pending" if is_upload(value) else value

    return spec.validate({k: stand_in(v) for k, v in answers.items()})


def _choices(f: InputField) -> list[Any]:
    if f.type == "boolean":
        return [True, False]
    return list(f.enum) if f.enum else []


def _choice_label(lang: str, value: Any) -> str:
    if value is True:
        return text(lang, "btn_yes")
    if value is False:
        return text(lang, "btn_no")
    return str(value)


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_show(v) for v in value)
    shown = "📎" if is_upload(value) else str(value)
    return shown if len(shown) <= 200 else shown[:199] + "…"


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def new_message_media(message: Message) -> tuple[str, str] | None:
    """(kind, Telegram file_id) of an uploaded photo, video, audio, voice or document."""
    if message.photo:
        return "image", message.photo[-1].file_id
    for kind, item in (("video", message.video), ("audio", message.audio), ("audio", message.voice),
                       ("file", message.document), ("video", message.animation)):
        if item is not None:
            if kind == "file" and message.document and (message.document.mime_type or "").startswith("image/"):
                return "image", item.file_id
            return kind, item.file_id
    return None


__all__ = ["Deps", "advance", "ask_field", "confirm", "confirm_draft", "main_menu", "more_options", "parse_answer",
           "show_models", "start_model"]
