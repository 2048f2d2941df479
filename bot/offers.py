"""Offers made outside a flow, in a private chat: text becomes "Generate this?" with Z-Image
(its ratios as ✅ buttons), and a photo an edit with the default editing model, its caption as
the instruction (asked for when there is none). Both are drafts keyed by the update, so the
same message handled twice offers the same draft, and one tap on ✅ starts one job.
"""
from __future__ import annotations

from typing import Any

from telegram.ext import ContextTypes

from bot import imagine, incoming_media, wizard
from bot.context import Deps, deps_of
from config.catalogue import InputField, ModelSpec
from config.texts import text
from kie.uploads import TelegramFile
from storage.conversations import Conversation, Draft, Step

DEFAULT_EDIT_MODEL = "google/nano-banana-edit"     # a photo with a caption, outside a flow


async def offer_prompt(context: ContextTypes.DEFAULT_TYPE, update_id: int, chat_id: int, user_id: int, lang: str,
                       words: str) -> None:
    """Text sent outside a flow: "Generate this?" with Z-Image, its ratios as ✅ buttons."""
    deps = deps_of(context)
    spec = deps.catalogue.get(imagine.DEFAULT_MODEL)
    prompt_field = spec.field("prompt") if spec is not None and deps.pricing.offered(spec) else None
    if spec is None or prompt_field is None:
        await context.bot.send_message(chat_id, text(lang, "not_understood"))
        return
    value, problem = wizard.parse_answer(lang, spec, prompt_field, words, None)
    if problem:
        await context.bot.send_message(chat_id, problem)
        return
    await wizard.confirm_draft(context, chat_id, user_id, lang, spec, {prompt_field.name: value},
                               f"update:{update_id}", header=text(lang, "offer_prompt"))


async def offer_edit(context: ContextTypes.DEFAULT_TYPE, update_id: int, chat_id: int, user_id: int, lang: str,
                     file: incoming_media.Received, caption: str) -> None:
    """A photo sent outside a flow: an edit with the default editing model, the caption as its
    instruction (asked for when there is none)."""
    deps = deps_of(context)
    spec = edit_model(deps)
    photo_field = image_field(spec) if spec is not None else None
    if spec is None or photo_field is None or photo_field.media is None:
        await context.bot.send_message(chat_id, text(lang, "not_understood"))
        return
    refusal = incoming_media.refusal(file, photo_field.media)
    if refusal is not None:
        await context.bot.send_message(chat_id, incoming_media.refusal_words(lang, photo_field, refusal))
        return
    upload = TelegramFile(file.file_id).to_json()
    answers: dict[str, Any] = {photo_field.name: [upload] if photo_field.type == "array-of-url" else upload}
    prompt_field = spec.field("prompt")
    if caption and prompt_field is not None:
        value, problem = wizard.parse_answer(lang, spec, prompt_field, caption, None)
        if problem:
            await context.bot.send_message(chat_id, problem)
            return
        answers[prompt_field.name] = value
    conv = Conversation(Step.WIZARD, Draft(model=spec.id, id=wizard.draft_id_for(f"update:{update_id}"),
                                           answers=answers))
    header = text(lang, "offer_edit" if caption else "offer_edit_ask", name=spec.name(lang))
    await wizard.advance(context, chat_id, user_id, lang, spec, conv, header=header)


def edit_model(deps: Deps) -> ModelSpec | None:
    """The default editing model: DEFAULT_EDIT_MODEL when offered, else the first offered
    image-edit model that takes a prompt and a photo."""
    preferred = deps.catalogue.get(DEFAULT_EDIT_MODEL)
    candidates = [preferred] if preferred is not None else []
    candidates += deps.catalogue.in_category("image_edit")
    return next((m for m in candidates if deps.pricing.offered(m) and m.field("prompt") is not None
                 and image_field(m) is not None), None)


def image_field(spec: ModelSpec) -> InputField | None:
    """The model's first required image input."""
    return next((f for f in spec.required_fields if f.media and f.media.get("kind") == "image"), None)


