"""What the conversation says, read off the simulated chat and checked against the catalogue
rather than against the bot's own wording functions (#14, "every question in human words"):
durations carry their unit on every button, a number is shown and sent as the whole number the
user typed, a speech-to-text result arrives as the text itself, and the welcome promises only
what the offered models make. The expected words are written here, in both languages, so a
label made without its unit (or a float, or raw JSON) fails even where the every-model walk,
which presses the labels the bot itself makes, would not notice."""
from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
import requests

from config.catalogue import InputField, ModelSpec, load_catalogue
from config.pricing import default_pricing
from config.texts import LANGS, text
from sim.kie import KieSim
from sim.telegram import ChatMessage, TelegramSim
from storage.db import Database
from storage.jobs import recent_jobs
from tests.support.harness import Instance
from tests.support.waiting import wait_until
from tests.support.wizard_driver import Driver

USER = 7301
CATALOGUE = load_catalogue()
PRICING = default_pricing()
OFFERED = [m for m in CATALOGUE.offered() if PRICING.offered(m)]
SECONDS = {"en": "s", "ru": "с"}        # how each language writes "5 seconds" on a button: "5 s", "5 с"
# Marks a button may carry after its value: the default, a price.
AFTER_VALUE = r"(?: · .+)?"


def model(model_id: str) -> ModelSpec:
    spec = CATALOGUE.get(model_id)
    assert spec is not None and spec in OFFERED, f"{model_id} is not offered any more: pick another"
    return spec


def field_of(spec: ModelSpec, name: str) -> InputField:
    field = spec.field(name)
    assert field is not None
    return field


def newest(telegram: TelegramSim, user: int = USER) -> ChatMessage:
    return [m for m in telegram.chat(user) if m.from_bot][-1]


def labels(message: ChatMessage) -> list[str]:
    return [b[0] for row in message.buttons for b in row]


def kie_input(kie: KieSim, count: int = 1) -> dict[str, object]:
    """The input of the newest createTask KIE received, once `count` have arrived."""
    wait_until(lambda: len(kie.calls("createTask")) >= count, timeout=30, what=f"{count} createTask call(s)")
    return kie.calls("createTask")[-1]["body"]["input"]


# --- durations carry their unit -----------------------------------------------------------------
@pytest.mark.parametrize("lang", LANGS)
def test_a_duration_chosen_to_start_shows_its_unit_on_every_button(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database, lang: str) -> None:
    """Kling 2.6 asks its duration last, on the confirmation: "✅ 5 s", never "✅ 5"."""
    spec = model("kling-2.6/text-to-video")
    duration = field_of(spec, "duration")
    assert duration.enum and duration is spec.required_fields[-1]
    driver = Driver(telegram, db, spec, USER, lang=lang)
    driver.open_model()
    driver.walk(stop_at_confirm=True)
    starts = [label for label in labels(newest(telegram)) if label.startswith("✅")]
    shape = re.compile(rf"✅ (\d+) {SECONDS[lang]}{AFTER_VALUE}")
    assert all(shape.fullmatch(label) for label in starts), starts
    assert [shape.fullmatch(label).group(1) for label in starts] == list(duration.enum)
    longest = duration.enum[-1]
    driver.act(lambda: telegram.user_presses(USER, f"✅ {longest} {SECONDS[lang]}"))
    assert kie_input(kie)["duration"] == longest


@pytest.mark.parametrize("lang", LANGS)
def test_a_duration_under_more_options_shows_its_unit_on_every_button(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database, lang: str) -> None:
    """Hailuo 02 keeps its duration under More options: "6 s · default" and "10 s"."""
    spec = model("hailuo/02-text-to-video-standard")
    duration = field_of(spec, "duration")
    assert duration.enum and duration in spec.optional_fields
    driver = Driver(telegram, db, spec, USER, lang=lang)
    driver.open_model()
    driver.walk(stop_at_confirm=True)
    driver.act(lambda: telegram.user_presses(USER, text(lang, "btn_more_options")))
    driver.act(lambda: telegram.user_presses(USER, duration.label(lang)))
    shape = re.compile(rf"(\d+) {SECONDS[lang]}{AFTER_VALUE}")
    values = [label for label in labels(newest(telegram)) if label[:1].isdigit()]
    assert all(shape.fullmatch(label) for label in values), values
    assert [shape.fullmatch(label).group(1) for label in values] == list(duration.enum)
    longest = duration.enum[-1]
    driver.act(lambda: telegram.user_presses(USER, f"{longest} {SECONDS[lang]}"))
    assert f"• {duration.label(lang)}: {longest} {SECONDS[lang]}" in (newest(telegram).text or "")
    driver.walk()
    assert kie_input(kie)["duration"] == longest


# --- numbers are shown and sent as the whole numbers typed ----------------------------------------
@pytest.mark.parametrize("lang", LANGS)
def test_a_typed_variation_number_is_shown_as_42_and_reaches_kie_as_the_integer_42(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database, lang: str) -> None:
    """Seedance 1.0 Pro's seed is a "number" from -1 to 2147483647: before, its question said
    "from -1 to 2.14748e+09", the confirmation "42.0", and KIE got 42.0."""
    spec = model("bytedance/v1-pro-text-to-video")
    seed = field_of(spec, "seed")
    assert seed.type == "number" and seed in spec.optional_fields and seed.max == 2147483647
    driver = Driver(telegram, db, spec, USER, lang=lang)
    driver.open_model()
    driver.walk(stop_at_confirm=True)
    driver.act(lambda: telegram.user_presses(USER, text(lang, "btn_more_options")))
    driver.act(lambda: telegram.user_presses(USER, seed.label(lang)))
    question = newest(telegram).text or ""
    assert "-1" in question and "2147483647" in question, question
    assert not re.search(r"\d[eE][+-]?\d|2[.,]14748", question), question
    driver.act(lambda: telegram.user_sends(USER, "42"))
    confirmation = newest(telegram).text or ""
    assert f"• {seed.label(lang)}: 42\n" in confirmation + "\n", confirmation
    assert not re.search(r"42[.,]0|\d[eE][+-]?\d", confirmation), confirmation
    driver.walk()
    sent = kie_input(kie)["seed"]
    assert sent == 42 and type(sent) is int, f"KIE was sent {sent!r}"
    [job] = recent_jobs(db, USER)
    assert type(job.input["seed"]) is int


# --- a text result is text ------------------------------------------------------------------------
@pytest.mark.parametrize("lang", LANGS)
def test_a_speech_to_text_result_arrives_as_the_transcript_itself(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database, lang: str) -> None:
    """KIE answers a text model with resultJson {"resultObject": {...}}: the user reads the
    transcript in it, headed by the model's name, and no braces, keys or task id."""
    spec = model("elevenlabs/speech-to-text")
    assert spec.result_kind == "text"
    Driver(telegram, db, spec, USER, lang=lang).run()
    [job] = recent_jobs(db, USER)
    record = requests.get(f"{kie.url}/api/v1/jobs/recordInfo", params={"taskId": job.kie_task_id},
                          headers={"Authorization": f"Bearer {kie.api_key}"}, timeout=10).json()["data"]
    result = json.loads(record["resultJson"])["resultObject"]
    transcript = result["text"]
    assert isinstance(transcript, str) and transcript.strip()
    answers = [m for m in telegram.chat(USER) if m.from_bot and m.media is None and transcript in (m.text or "")]
    assert [m.text for m in answers] == [f"{spec.name(lang)}:\n{transcript}"]
    assert not re.search(r"[{}\[\]]|\"\w+\":|taskId|resultObject", answers[0].text or "")


# --- the welcome promises what the models make --------------------------------------------------
# What a welcome may promise, in each language's words, and which offered models keep the promise.
PROMISES: dict[str, tuple[dict[str, str], Callable[[ModelSpec], bool]]] = {
    "images": ({"en": r"\b(?:images?|pictures?|photos?)\b", "ru": r"изображени|картин|фото"},
               lambda m: m.result_kind == "photo"),
    "video": ({"en": r"\bvideos?\b", "ru": r"видео"}, lambda m: m.result_kind == "video"),
    "speech": ({"en": r"\bspeech\b|\bvoices?\b", "ru": r"\bреч|голос"},
               lambda m: m.task in ("text-to-speech", "text-to-dialogue")),
    "sound effects": ({"en": r"\bsound effects?\b", "ru": r"звуков\w* эффект"}, lambda m: m.task == "sound-effect"),
    "music": ({"en": r"\bmusic\b|\bsongs?\b|\bmelod", "ru": r"музык|песн|мелоди"},
              lambda m: "music" in m.task or "song" in m.task),
}


@pytest.mark.parametrize("lang", LANGS)
def test_the_welcome_promises_only_what_the_offered_models_make(
        bot: Instance, telegram: TelegramSim, lang: str) -> None:
    """Before: the welcome promised music, and Audio held only ElevenLabs speech and effects."""
    telegram.user_sends(USER, "/start", language_code=lang)
    telegram.wait_for_chat(USER, lambda c: any(m.from_bot and m.buttons for m in c), timeout=15)
    welcome = newest(telegram).text or ""
    promised = [name for name, (words, _) in PROMISES.items() if re.search(words[lang], welcome, re.IGNORECASE)]
    assert promised, f"the welcome promises nothing this test knows: {welcome!r}"
    unkept = [name for name in promised if not any(PROMISES[name][1](m) for m in OFFERED)]
    assert unkept == [], f"the welcome promises {unkept}, which no offered model makes: {welcome!r}"


@pytest.mark.parametrize("lang", LANGS)
def test_every_category_of_the_main_menu_holds_offered_models(
        bot: Instance, telegram: TelegramSim, lang: str) -> None:
    telegram.user_sends(USER, "/start", language_code=lang)
    telegram.wait_for_chat(USER, lambda c: any(m.from_bot and m.buttons for m in c), timeout=15)
    categories = labels(newest(telegram))
    assert categories
    names = {m.name(lang) for m in OFFERED}
    for category in categories:
        menu = newest(telegram)
        telegram.user_presses(USER, category)
        telegram.wait_for_chat(USER, lambda c: newest(telegram).text != menu.text, timeout=15)
        listed = [label.split(" · ")[0] for label in labels(newest(telegram))]
        assert names & set(listed), f"{category} lists no offered model: {listed}"
        telegram.user_presses(USER, text(lang, "btn_menu"))
        telegram.wait_for_chat(USER, lambda c: newest(telegram).text == menu.text, timeout=15)
