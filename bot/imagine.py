"""/imagine <prompt> [--ar W:H] [--model ID]: one line to a generation.

The prompt goes to the model exactly as typed, flags removed (design.md §5). `--model` takes an
id or an unambiguous short name (bot.model_search); `--ar` is set on the model's own shape
field, whatever it is called (bot.aspect), and a ratio the model does not make is refused with
the ones it does, never dropped. Without `--ar` the picture is 1:1 when the model offers it,
else the model's own default. A model that needs more than a prompt and a shape continues in
the wizard with these filled in; otherwise a free job starts at once (keyed by the update) and
a paid one shows its confirmation first. Whichever way it goes, the /imagine message is the
job's request message (in a group its result replies to it).
"""
from __future__ import annotations

import re
from typing import Any

from telegram import Update
from telegram.ext import ContextTypes

from bot import aspect, model_search, wizard
from bot.context import Deps, deps_of, who
from bot.launch import Launch, start_job
from config.catalogue import ModelSpec
from config.texts import text

DEFAULT_MODEL = "z-image"
DEFAULT_RATIO = aspect.Ratio(1, 1)
_FLAG = re.compile(r"(?:^|\s)--(ar|model)(?:=|\s+)(\S+)")
_COMMAND = re.compile(r"^/\w+(?:@\w+)?\s?")


async def imagine(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/imagine <prompt> [--ar W:H] [--model ID]: one-line generation."""
    deps = deps_of(context)
    chat_id, user_id, lang = who(update, deps)
    assert update.message is not None
    prompt, flags = parse_imagine(update.message.text or "")
    spec, problem = find_model(deps, lang, flags.get("model", DEFAULT_MODEL))
    if spec is None:
        await context.bot.send_message(chat_id, problem)
        return
    prompt_field = spec.field("prompt")
    if prompt_field is None:
        await context.bot.send_message(chat_id, text(lang, "imagine_no_prompt", title=spec.name(lang)))
        return
    if not prompt:
        await context.bot.send_message(chat_id, usage(lang, spec))
        return
    _, refused = wizard.parse_answer(lang, spec, prompt_field, prompt, None)
    shape, refused = ({}, refused) if refused else shape_for(lang, spec, flags.get("ar"))
    if refused:
        await context.bot.send_message(chat_id, refused)
        return
    given = {"prompt": prompt, **shape}
    request = update.message.message_id
    missing = [f for f in spec.required_fields if f.name not in spec.with_defaults(given)]
    if missing:     # a model that needs more than a prompt: continue in the wizard
        await wizard.start_model(context, chat_id, user_id, lang, spec, preset=given, request_message=request)
        return
    key = f"update:{update.update_id}"
    if await start_job(context, chat_id, user_id, lang, spec, given, key,
                       request_message_id=request) is Launch.REPRICED:    # paid: confirm first
        await wizard.confirm_draft(context, chat_id, user_id, lang, spec, given, key, request_message=request)


def parse_imagine(message: str) -> tuple[str, dict[str, str]]:
    """Split `/imagine[@bot] <prompt> [--ar W:H] [--model ID]` into the prompt as typed and flags."""
    rest = _COMMAND.sub("", message, count=1)
    flags = {m.group(1): m.group(2) for m in _FLAG.finditer(rest)}
    return _FLAG.sub("", rest).strip(), flags


def find_model(deps: Deps, lang: str, name: str) -> tuple[ModelSpec | None, str]:
    """The offered model `--model name` means, or None and why not (unknown, or which ids it
    could be)."""
    match model_search.resolve(deps.catalogue, deps.pricing, name):
        case model_search.Found(spec=spec):
            return spec, ""
        case model_search.Ambiguous(ids=ids):
            return None, text(lang, "ambiguous_model", value=name, ids=", ".join(ids[:8]))
        case _:
            return None, text(lang, "unknown_model", value=name)


def shape_for(lang: str, spec: ModelSpec, raw: str | None) -> tuple[dict[str, Any], str | None]:
    """The model's own shape setting for `--ar raw` (1:1 when not given and offered), or why
    `raw` cannot be applied."""
    if raw is None:
        shape = aspect.aspect_of(spec)
        value = shape.value_for(DEFAULT_RATIO) if shape is not None else None
        return ({shape.field.name: value} if shape is not None and value is not None else {}), None
    match aspect.pick(spec, raw):
        case aspect.Picked(name=name, value=value):
            return {name: value}, None
        case aspect.NotOffered(offered=offered):
            return {}, text(lang, "bad_ratio", value=raw, title=spec.name(lang), ratios=", ".join(offered))
        case aspect.NotARatio():
            return {}, text(lang, "bad_ratio_format", value=raw)
        case _:
            return {}, text(lang, "no_ratio", title=spec.name(lang), value=raw)


def usage(lang: str, spec: ModelSpec) -> str:
    """How to use /imagine, and the ratios `spec` offers."""
    shape = aspect.aspect_of(spec)
    ratios = ", ".join(shape.ratios()) if shape is not None else ""
    extra = text(lang, "imagine_ratios", title=spec.name(lang), ratios=ratios) if ratios else ""
    return "\n".join(p for p in (text(lang, "imagine_usage"), extra) if p)
