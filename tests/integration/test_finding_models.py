"""Finding a model again (#14, discovery): the main menu starts with the user's last three
distinct models, newest first, and `/models <words>` finds a model by words only its
description holds, in either language."""
from __future__ import annotations

import re

import pytest

from config.catalogue import ModelSpec, load_catalogue
from config.pricing import default_pricing
from config.texts import LANGS
from sim.telegram import ChatMessage, TelegramSim
from storage import ledger
from storage.db import Database
from storage.jobs import recent_jobs
from tests.support.harness import Instance
from tests.support.waiting import wait_until

USER = 7501
CATALOGUE = load_catalogue()
PRICING = default_pricing()
OFFERED = [m for m in CATALOGUE.offered() if PRICING.offered(m)]
LETTERS = {"en": "[a-z]", "ru": "[а-яё]"}     # a word of the language, not a brand or a link in it


def newest(telegram: TelegramSim) -> ChatMessage:
    return [m for m in telegram.chat(USER) if m.from_bot][-1]


def labels(message: ChatMessage) -> list[str]:
    return [b[0] for row in message.buttons for b in row]


def model(model_id: str) -> ModelSpec:
    spec = CATALOGUE.get(model_id)
    assert spec is not None and spec in OFFERED, f"{model_id} is not offered any more: pick another"
    return spec


def generate_with(telegram: TelegramSim, db: Database, spec: ModelSpec, count: int) -> None:
    """One /imagine with `spec` (confirming its price when it has one), and its job final: the
    user's `count`th."""
    before = len([m for m in telegram.chat(USER) if m.from_bot])
    telegram.user_sends(USER, f"/imagine a lighthouse, take {count} --model {spec.id}")
    telegram.wait_for_chat(USER, lambda c: len([m for m in c if m.from_bot]) > before, timeout=15)
    if any(label.startswith("✅ Generate") for label in labels(newest(telegram))):
        telegram.user_presses(USER, "✅ Generate")
    wait_until(lambda: len(js := recent_jobs(db, USER)) == count and all(j.terminal for j in js), timeout=30,
               what=f"job {count} ({spec.id}) final")


def test_the_main_menu_shows_the_last_three_distinct_models_newest_first(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    ledger.grant(db, USER, 1_000_000, "test money")
    used = [model(m) for m in ("z-image", "google/nano-banana", "z-image", "qwen2/text-to-image",
                               "google/imagen4-fast")]
    for count, spec in enumerate(used, start=1):
        generate_with(telegram, db, spec, count)
    telegram.user_sends(USER, "/start")
    telegram.wait_for_chat(USER, lambda c: "🕘" in " ".join(labels(newest(telegram))), timeout=15)
    recent = [label for label in labels(newest(telegram)) if label.startswith("🕘")]
    # Newest first, each once: Nano Banana, used before Z-Image's second job, is the fourth.
    assert recent == [f"🕘 {model(m).name('en')}" for m in ("google/imagen4-fast", "qwen2/text-to-image", "z-image")]
    assert labels(newest(telegram))[len(recent)] == "🎨 Create image"


def named(spec: ModelSpec) -> str:
    """What names a model: its id, its title (the provider first) and its names."""
    return "\n".join([spec.id, spec.title, *(spec.name(lang) for lang in LANGS)]).lower()


def described(spec: ModelSpec) -> str:
    return "\n".join(spec.description(lang) for lang in LANGS).lower()


def description_only_word(lang: str) -> tuple[str, ModelSpec]:
    """A word of some offered model's description, in `lang`, that no other offered model holds
    anywhere and that is not in that model's own names or id."""
    letters = LETTERS[lang]
    words = sorted({w for m in OFFERED for w in re.findall(rf"{letters}{{6,}}", m.description(lang).lower())})
    for word in words:
        holders = [m for m in OFFERED if word in named(m) or word in described(m)]
        if len(holders) == 1 and word not in named(holders[0]):
            return word, holders[0]
    raise AssertionError(f"no word of the {lang} descriptions belongs to one model's description alone")


@pytest.mark.parametrize("lang", LANGS)
def test_models_with_a_word_only_a_description_holds_finds_that_model(
        bot: Instance, telegram: TelegramSim, lang: str) -> None:
    word, spec = description_only_word(lang)
    telegram.user_sends(USER, f"/models {word}", language_code=lang)
    telegram.wait_for_chat(USER, lambda c: any(m.from_bot for m in c), timeout=15)
    found = newest(telegram).text or ""
    lines = [line for line in found.splitlines() if line.startswith("• ")]
    assert len(lines) == 1 and f" — {spec.id} · " in lines[0], found
    assert labels(newest(telegram)) == [spec.name(lang)]
