"""/models: every offered model as a list with its id (what `--model` takes) and its price,
paged in place; `/models <words>` lists the models whose names, providers or descriptions hold
every word. Each name is also a button that opens the model.

The words of a search travel in the page buttons (bot.callback_data.ModelList); a search too
long to fit in a button shows its first page only (its title still says how many pages).
"""
from __future__ import annotations

import math

from telegram import Update
from telegram.ext import ContextTypes

from bot import callback_data as cd
from bot import model_search, prices
from bot.context import deps_of, who
from bot.screens import Rows, show
from config.texts import text

PAGE_SIZE = 10
WORDS_MAX_BYTES = 48        # the longest search that still fits in a page button


async def models(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/models [words]: the catalogue as a list, or the models that match the words."""
    chat_id, _, lang = who(update, deps_of(context))
    await show_page(context, chat_id, lang, " ".join(context.args or []), 0)


async def show_page(context: ContextTypes.DEFAULT_TYPE, chat_id: int, lang: str, words: str, page: int,
                    replace: int | None = None) -> None:
    """One page of the list (of a search, given `words`), in place of message `replace` if given."""
    deps = deps_of(context)
    words = " ".join(words.split())
    found = (model_search.search(deps.catalogue, deps.pricing, words) if words
             else model_search.offered(deps.catalogue, deps.pricing))
    if not found:
        await show(context.bot, chat_id, text(lang, "models_none", words=words), replace=replace)
        return
    pages = max(1, math.ceil(len(found) / PAGE_SIZE))
    page = min(max(page, 0), pages - 1)
    shown = found[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]
    title = text(lang, "models_found", words=words, page=page + 1, pages=pages) if words else text(
        lang, "models_title", page=page + 1, pages=pages)
    lines = [text(lang, "models_line", name=m.name(lang), id=m.id, price=prices.list_label(lang, deps.pricing, m))
             for m in shown]
    buttons = [(m.name(lang), cd.build(cd.PickModel(m.id))) for m in shown]
    rows: Rows = [buttons[i:i + 2] for i in range(0, len(buttons), 2)]
    pageable = len(words.encode()) <= WORDS_MAX_BYTES
    nav = []
    if pageable and page > 0:
        nav.append((text(lang, "btn_prev"), cd.build(cd.ModelList(page - 1, words))))
    if pageable and page < pages - 1:
        nav.append((text(lang, "btn_next"), cd.build(cd.ModelList(page + 1, words))))
    rows += [nav] if nav else []
    await show(context.bot, chat_id, "\n".join([title, *lines]), rows, replace=replace)
