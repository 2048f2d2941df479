"""The model wizard: categories → models (paginated, with price) → the model card with the
first question → one question per required input → confirmation → the job.

Driven entirely by the catalogue: a field's type decides how it is asked (enums and booleans
as buttons, media as an upload or a link, numbers with their range, text with its limit), so
a new model needs no code. A required enum asked last doubles as the start buttons on the
confirmation ("✅ 16:9" starts it). The draft (storage.conversations.Draft: model, answers, what
is being asked) is kept in the conversations table under a short id that the buttons carry.

Menus, pages, More options and the card reached from a model button are shown in place of the
message tapped (bot.screens); each question is a new message, and the dialogue puts an answered
one away. A card whose first question is the prompt carries two example prompts, each with a
"use this" button; the main menu starts with the user's recent models.

The confirmation is the one place a user agrees to a price: it shows the exact price of the
choices made (or "free: 2 of 3 left today"), the balance, Top up when it is short, and start
buttons carrying ✅ and the price agreed to. Paid starts elsewhere (/imagine, Regenerate) come
here as a draft at the confirmation step (`confirm_draft`), idempotent by the draft's id.
"""
from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from telegram.ext import ContextTypes

from bot import callback_data as cd
from bot import prices, questions, screens
from bot.context import Deps, deps_of
from bot.screens import Rows, markup, show
from config.catalogue import InputField, ModelSpec
from config.texts import TEXTS, text
from kie.uploads import is_upload
from storage import conversations, ledger
from storage.conversations import Conversation, Draft, Step
from storage.jobs import recent_jobs

CATEGORIES = ("image", "image_edit", "video", "audio", "tools")
PAGE_SIZE = 8
MEDIA_WORD = questions.MEDIA_WORD
RECENT_MODELS = 3           # recent models at the top of the main menu
EXAMPLE_FIELDS = ("prompt", "text")     # the fields a card's example prompts fill
EXAMPLE_BUTTON_CHARS = 32


# --- menus ---------------------------------------------------------------------------------
def main_menu(lang: str, recent: Sequence[ModelSpec] = ()) -> Rows:
    """The user's recent models (🕘, one tap back to them), then the categories."""
    rows = [[(text(lang, "btn_recent", name=m.name(lang)), cd.build(cd.PickModel(m.id)))] for m in recent]
    return rows + [[(text(lang, f"cat_{c}"), cd.build(cd.Category(c, 0)))] for c in CATEGORIES]


def recent_models(deps: Deps, user_id: int) -> list[ModelSpec]:
    """The offered models of the user's latest jobs, newest first, each once (at most three)."""
    found: list[ModelSpec] = []
    for job in recent_jobs(deps.db, user_id, 20):
        spec = deps.catalogue.get(job.model)
        if spec is not None and spec not in found and deps.pricing.offered(spec):
            found.append(spec)
    return found[:RECENT_MODELS]


async def show_models(context: ContextTypes.DEFAULT_TYPE, chat_id: int, lang: str, category: str, page: int,
                      replace: int | None = None) -> None:
    """One page of a category's models, each with its price (in place of message `replace`)."""
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
    rows.append([(text(lang, "btn_menu"), cd.build(cd.Menu("back")))])
    await show(context.bot, chat_id, text(lang, "models_page", category=text(lang, f"cat_{category}"), page=page + 1,
                                          pages=pages), rows, replace=replace)


# --- the wizard ----------------------------------------------------------------------------
async def start_model(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int, lang: str, spec: ModelSpec,
                      preset: dict[str, Any] | None = None, ask: str | None = None, *, replace: int | None = None,
                      header: str = "", draft_id: str | None = None, request_message: int | None = None) -> None:
    """Show the model card and ask the first question (or `ask`, to edit one answer), in place
    of message `replace` if given. A fresh start whose first question is the prompt shows two
    example prompts with a "use this" button each. `request_message`: the message that asked
    (an /imagine), until a typed prompt takes its place."""
    conv = Conversation(Step.WIZARD, Draft(model=spec.id, id=draft_id or secrets.token_hex(5),
                                           answers=dict(preset or {}), request_message=request_message))
    card = text(lang, "model_card", name=spec.name(lang), description=spec.description(lang),
                time=spec.typical_time_s, price=prices.card_label(lang, deps_of(context).pricing, spec))
    card = f"{header}\n\n{card}" if header else card
    target = spec.field(ask) if ask else None
    if target is not None:
        conv.draft.answers.pop(target.name, None)
    else:
        target = next_question(spec, conv.draft.answers)
    if target is None:
        await confirm(context, chat_id, user_id, lang, spec, conv, header=card, replace=replace)
        return
    examples = examples_for(lang, spec) if ask is None and target.name == example_field(spec) else []
    extra: Rows = []
    if examples:
        card += "\n\n" + "\n".join([text(lang, "card_examples"),
                                      *(text(lang, "card_example", example=e) for e in examples)])
        extra = [[(text(lang, "btn_use_example", example=_shorten(e, EXAMPLE_BUTTON_CHARS)),
                   cd.build(cd.UseExample(conv.draft.id, i)))] for i, e in enumerate(examples)]
    await ask_field(context, chat_id, user_id, lang, spec, conv, target, header=card, replace=replace, extra=extra)


def example_field(spec: ModelSpec) -> str | None:
    """The field a card's example prompts fill: the model's required prompt (or text), if any."""
    return next((f.name for f in spec.required_fields
                 if f.name in EXAMPLE_FIELDS and f.type == "string" and not f.enum), None)


def examples_for(lang: str, spec: ModelSpec) -> list[str]:
    """Up to two example prompts for the model's task, in the user's language (none for tasks
    without examples)."""
    entry = TEXTS.get(f"example_{spec.task}")
    if entry is None:
        return []
    limit = (spec.field(example_field(spec) or "") or InputField("", "string", False)).max_length
    return [e for e in (entry.get(lang) or entry["en"]).split("\n") if e and (limit is None or len(e) <= limit)][:2]


def _shorten(words: str, limit: int) -> str:
    return words if len(words) <= limit else words[:limit - 1].rstrip() + "…"


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
    """The next required question, or the confirmation when every one is answered."""
    field = next_question(spec, conv.draft.answers)
    if field is not None:
        await ask_field(context, chat_id, user_id, lang, spec, conv, field, header=header)
    else:
        await confirm(context, chat_id, user_id, lang, spec, conv, header=header)


async def ask_field(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int, lang: str, spec: ModelSpec,
                    conv: Conversation, field: InputField, header: str = "", optional: bool = False, *,
                    replace: int | None = None, extra: Rows | None = None) -> None:
    """Ask one field (its question and buttons, then `extra` rows), as a new message or in place
    of message `replace`; a question with buttons is remembered as open, so that a typed answer
    can put it away (bot.screens). A question not shown leaves the step as it was (`show_step`)."""
    conv.step, conv.draft.asking, conv.draft.optional = Step.WIZARD, field.name, optional
    question, rows = question_for(lang, spec, conv, field)
    rows += extra or []
    if optional or (field.media and field.name in conv.draft.answers):
        rows.append([(text(lang, "btn_skip" if optional else "btn_done"),
                      cd.build(cd.Skip(conv.draft.id, spec.inputs.index(field))))])
    body = f"{header}\n\n{question}" if header else question
    shown = await show_step(context, chat_id, user_id, conv, body, rows, replace=replace)
    open_question = screens.OpenQuestion(field.name, shown, body, question) if rows else None
    screens.remember(context.chat_data, user_id, open_question)


def question_for(lang: str, spec: ModelSpec, conv: Conversation, f: InputField) -> tuple[str, Rows]:
    """The question for one field (bot.questions) and its buttons, each carrying the draft."""
    asked = questions.question(lang, f)
    index = spec.inputs.index(f)
    buttons = [(words, cd.build(cd.Choose(conv.draft.id, index, i))) for i, words in asked.choices]
    return asked.text, questions.button_rows(buttons)


def draft_id_for(request_key: str) -> str:
    """The draft id of a confirmation made for a request (an /imagine update, a Regenerate
    press): the same request handled again shows the same draft, so one job comes of it."""
    return hashlib.sha256(request_key.encode()).hexdigest()[:10]


async def confirm_draft(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int, lang: str,
                        spec: ModelSpec, answers: dict[str, Any], request_key: str, header: str = "", *,
                        request_message: int | None = None) -> None:
    """A start outside the wizard (a paid /imagine or Regenerate, text offered as a prompt): its
    choices as a draft at the confirmation, which shows the price and the ✅ button.
    `request_message`: the message the job will answer (the /imagine), if any."""
    conv = Conversation(Step.CONFIRM, Draft(model=spec.id, id=draft_id_for(request_key), answers=dict(answers),
                                            request_message=request_message))
    await confirm(context, chat_id, user_id, lang, spec, conv, header=header)


async def confirm(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int, lang: str, spec: ModelSpec,
                  conv: Conversation, header: str = "", *, replace: int | None = None) -> None:
    """Every choice, its price and the balance; ✅ Generate (or the final enum's values, each
    with ✅) starts the job at the price it carries. In place of message `replace` if given. A
    confirmation not shown leaves the step as it was (`show_step`)."""
    deps = deps_of(context)
    conv.step, conv.draft.asking = Step.CONFIRM, None
    answers, draft = conv.draft.answers, conv.draft.id
    choices = questions.summary(lang, spec, answers)
    job_input = spec.with_defaults(answers)
    charge = prices.charge_for(deps.db, deps.pricing, user_id, spec, job_input)
    last = spec.required_fields[-1] if spec.required_fields else None
    rows: Rows = []
    if last is not None and last.name not in answers and _choices(last):
        index = spec.inputs.index(last)
        options = [(i, v, charge.requoted(deps.pricing.quote(spec, {**job_input, last.name: v})).price)
                   for i, v in questions.offered_choices(last)]
        known = [p for _, _, p in options if p is not None]
        uniform = len({p for _, _, p in options}) == 1
        buttons = [(_start_label(lang, last, v, p, uniform), cd.build(cd.Choose(draft, index, i, p)))
                   for i, v, p in options if p is not None]
        rows += questions.button_rows(buttons)
        lowest = min(known) if known else None
        money = _money_line(context, user_id, lang, charge, lowest, exact=uniform)
        action = text(lang, "confirm_pick_last", field=last.label(lang)) if known else ""
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
    await show_step(context, chat_id, user_id, conv, body, rows, replace=replace)


async def show_step(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int, conv: Conversation, body: str,
                    rows: Rows, *, replace: int | None = None) -> int:
    """Move the conversation to `conv` and show its screen (bot.screens.show); returns the
    message id that shows it. The step is saved first, so that whoever sees the screen finds
    its buttons working. When the screen fails (a 5xx, a lost answer, a term that ended), the
    step the user was at is put back before the error goes on: the error handler's "please try
    again" is then true, as the buttons and typed answers of the last screen the user saw still
    work (left moved on, that screen was out of date and nothing on screen went further). A
    screen Telegram showed all the same (its answer lost) has out-of-date buttons instead."""
    db = deps_of(context).db
    before = conversations.load(db, chat_id, user_id)
    conversations.save(db, chat_id, user_id, conv)
    try:
        return await show(context.bot, chat_id, body, rows, replace=replace)
    except BaseException:
        if before.step is Step.IDLE:
            conversations.clear(db, chat_id, user_id)
        else:
            conversations.save(db, chat_id, user_id, before)
        raise


def _start_label(lang: str, f: InputField, value: Any, price: int, uniform: bool) -> str:
    """A final choice that starts the job carries ✅ (design.md §5), free or paid: "✅ 16:9",
    with its own price when the choices cost different amounts."""
    cost = "" if price == 0 or uniform else f" · {prices.amount(lang, price)}"
    return f"✅ {questions.choice_label(lang, f, value)}{cost}"


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
                       conv: Conversation, replace: int | None = None) -> None:
    """The optional fields with their current values, and Back to the confirmation (in place of
    message `replace`, the confirmation, if given)."""
    draft, answers = conv.draft.id, conv.draft.answers
    rows = [[(f.label(lang) + (f" ({questions.shown(lang, f, answers[f.name])})" if f.name in answers else ""),
              cd.build(cd.PickOption(draft, spec.inputs.index(f))))] for f in spec.optional_fields]
    rows.append([(text(lang, "btn_prev"), cd.build(cd.ShowConfirm(draft)))])
    await show(context.bot, chat_id, text(lang, "choose_option"), rows, replace=replace)


def parse_answer(lang: str, spec: ModelSpec, f: InputField, raw: str, current: Any) -> tuple[Any, str | None]:
    """A typed value from what the user typed, or a plain-language reason it does not fit, in
    the user's language. A whole number stays whole ("42" is sent as 42, never 42.0)."""
    name = f.label(lang)
    span = questions.range_words(lang, f)
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
    if isinstance(value, list) and f.max_items is not None and len(value) > f.max_items:
        return None, text(lang, "too_many_items", field=name, max=f.max_items)
    if isinstance(value, list) and f.min_items is not None and len(value) < f.min_items:
        return None, text(lang, "too_few_items", field=name, min=f.min_items)
    if f.check(value) is None:
        return value, None
    if f.type in ("integer", "number"):
        return None, text(lang, f"bad_{f.type}", field=name, range=span)
    return None, text(lang, "field_not_fit", field=name)


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
        if not math.isfinite(number):
            return None, "bad_number"
        return (int(number) if number.is_integer() and abs(number) < 1e15 else number), None
    if f.type in ("url", "array-of-url"):
        links = raw.split()
        if not links or not all(link.startswith(("http://", "https://")) for link in links):
            return None, "bad_url"
        return (links[0] if f.type == "url" else [*(current or []), *links]), None
    if f.type == "array-of-string":
        return [part.strip() for part in raw.replace("\n", ",").split(",") if part.strip()], None
    return (raw if f.name == "prompt" else raw.strip()), None


def draft_problems(spec: ModelSpec, answers: dict[str, Any], lang: str = "en") -> list[str]:
    """Why the draft would be refused, in the user's words and language (spec.validate through
    bot.questions.input_problems), with uploads not yet on KIE (kie.uploads.TelegramFile)
    standing in as URLs."""
    def stand_in(value: Any) -> Any:
        if isinstance(value, list):
            return [stand_in(v) for v in value]
        return "https://upload.invalid/pending" if is_upload(value) else value

    return questions.input_problems(lang, spec, {k: stand_in(v) for k, v in answers.items()})


def _choices(f: InputField) -> list[Any]:
    return questions.choice_values(f)


__all__ = ["Deps", "Rows", "advance", "ask_field", "confirm", "confirm_draft", "main_menu", "markup", "more_options",
           "parse_answer", "recent_models", "show_models", "start_model"]
