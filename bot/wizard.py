"""The model wizard: categories → models (paginated, with price) → the model card with the
first question → one question per required input → confirmation → the job.

Driven entirely by the catalogue: a field's type decides how it is asked (enums and booleans
as buttons, media as an upload or a link, numbers with their range, text with its limit), so
a new model needs no code. A required enum asked last doubles as the start buttons on the
confirmation (pick "16:9" and it starts). The draft (storage.conversations.Draft: model,
answers, what is being asked) is kept in the conversations table under a short id that the
buttons carry.
"""
from __future__ import annotations

import math
import secrets
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.ext import ContextTypes

from bot import callback_data as cd
from bot.context import Deps, deps_of
from config.catalogue import InputField, ModelSpec
from config.texts import text
from kie.uploads import is_upload
from storage import conversations
from storage.conversations import Conversation, Draft, Step

CATEGORIES = ("image", "image_edit", "video", "audio", "tools")
PAGE_SIZE = 8
MEDIA_WORD = {"image": "media_image", "video": "media_video", "audio": "media_audio"}
Rows = list[list[tuple[str, str]]]


def markup(rows: Rows) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(t, callback_data=d) for t, d in row] for row in rows])


def price_text(lang: str, spec: ModelSpec) -> str:
    if spec.price_credits is None:
        return text(lang, "price_unknown")
    return text(lang, "price_credits", price=f"{spec.price_credits:g}")


def label(spec: ModelSpec, f: InputField) -> str:
    return "Prompt" if f.name == "prompt" else f.name.replace("_", " ").capitalize()


# --- menus ---------------------------------------------------------------------------------
def main_menu(lang: str) -> Rows:
    return [[(text(lang, f"cat_{c}"), cd.build(cd.Category(c, 0)))] for c in CATEGORIES]


async def show_models(context: ContextTypes.DEFAULT_TYPE, chat_id: int, lang: str, category: str, page: int) -> None:
    """One page of a category's models, each with its price."""
    models = deps_of(context).catalogue.in_category(category)
    pages = max(1, math.ceil(len(models) / PAGE_SIZE))
    page = min(max(page, 0), pages - 1)
    rows: Rows = [[(f"{m.name(lang)} · {price_text(lang, m)}", cd.build(cd.PickModel(m.id)))]
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
                time=spec.typical_time_s, price=price_text(lang, spec))
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


async def confirm(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int, lang: str, spec: ModelSpec,
                  conv: Conversation, header: str = "") -> None:
    """Every choice and the price; the final enum's values (or Generate) start the job."""
    conv.step, conv.draft.asking = Step.CONFIRM, None
    conversations.save(deps_of(context).db, chat_id, user_id, conv)
    answers, draft = conv.draft.answers, conv.draft.id
    choices = "\n".join(f"• {label(spec, f)}: {_show(answers[f.name])}" for f in spec.inputs if f.name in answers)
    summary = text(lang, "confirm", name=spec.name(lang), price=price_text(lang, spec), choices=choices)
    last = spec.required_fields[-1] if spec.required_fields else None
    if last is not None and last.name not in answers:
        index = spec.inputs.index(last)
        buttons = [(_choice_label(lang, v), cd.build(cd.Choose(draft, index, i))) for i, v in enumerate(_choices(last))]
        rows = [buttons[i:i + 3] for i in range(0, len(buttons), 3)]
        action = text(lang, "confirm_pick_last", field=label(spec, last).lower())
    else:
        rows, action = [[(text(lang, "btn_generate"), cd.build(cd.Generate(draft)))]], text(lang, "confirm_generate")
    if spec.optional_fields:
        rows.append([(text(lang, "btn_more_options"), cd.build(cd.MoreOptions(draft)))])
    body = "\n\n".join(p for p in (header, summary, action) if p)
    await context.bot.send_message(chat_id, body, reply_markup=markup(rows))


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


__all__ = ["Deps", "advance", "ask_field", "confirm", "main_menu", "more_options", "parse_answer", "show_models",
           "start_model"]
