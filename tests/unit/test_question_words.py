"""Every question of every offered model, in both languages, in human words: labels and hints
from the catalogue, units, Yes/No, the default marked, whole numbers kept whole, raw voice ids
and internal switches out of sight, and text results readable. The untranslated-text check is
shown to catch what users saw before (raw field names, 42.0, English on Russian screens)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot import questions
from bot.wizard import parse_answer
from config import field_words
from config.catalogue import CATALOGUE_PATH, InputField, ModelSpec, load_catalogue
from config.texts import LANGS, text
from tests.support.wording_check import WordingCheck

CATALOGUE = load_catalogue()
OFFERED = CATALOGUE.offered()
CHECK = WordingCheck(CATALOGUE)
WALKS = [(spec, lang) for spec in OFFERED for lang in LANGS]
INTERNAL = ("nsfw_checker", "enable_safety_checker", "sync_mode", "upload_method", "watermark", "return_last_frame")
TYPED_PROMPT = {"en": "a fox in the snow", "ru": "лиса в снегу"}


def sample_answer(lang: str, f: InputField) -> Any:
    """A value a user could give the field (the default, a choice, a number in range, a link)."""
    values = questions.choice_values(f)
    if values:
        return f.default if f.default in values else values[-1]
    if f.type in ("integer", "number"):
        return f.max if f.max is not None else 42
    if f.type == "array-of-url":
        return ["https://example.com/a.png", "https://example.com/b.png"]
    if f.type == "url":
        return "https://example.com/a.png"
    if f.type == "array-of-string":
        return [TYPED_PROMPT[lang], TYPED_PROMPT[lang]]
    return TYPED_PROMPT[lang]


def screens(lang: str, spec: ModelSpec) -> list[str]:
    """Every text the wizard can show for the model: each question and its buttons, the More
    options list, the confirmation's answers and its "choose to start" line, and the reasons a
    typed answer is refused."""
    asked = [*spec.required_fields, *spec.optional_fields]
    answers = {f.name: sample_answer(lang, f) for f in asked}
    shown = [questions.summary(lang, spec, answers)]
    for f in asked:
        question = questions.question(lang, f)
        shown += [question.text, *(label for _, label in question.choices)]
        shown += [f"{f.label(lang)} ({questions.shown(lang, f, answers[f.name])})",
                  text(lang, "confirm_pick_last", field=f.label(lang))]
        if not questions.choice_values(f) and not f.media:
            for typed in ("not a number", "-99999999999", "1" * 20000):
                _, problem = parse_answer(lang, spec, f, typed, None)
                shown.append(problem or "")
    return shown


@pytest.mark.parametrize(("spec", "lang"), WALKS, ids=[f"{s.id}-{lang}" for s, lang in WALKS])
def test_every_question_of_an_offered_model_is_in_the_users_words(spec: ModelSpec, lang: str) -> None:
    problems = [p for screen in screens(lang, spec) for p in CHECK.problems(lang, screen, TYPED_PROMPT.values())]
    assert problems == []


def test_the_words_table_covers_the_languages_the_bot_speaks() -> None:
    assert field_words.LANGS == LANGS


@pytest.mark.parametrize("spec", OFFERED, ids=[s.id for s in OFFERED])
def test_every_asked_field_has_a_label_and_a_hint_in_every_language(spec: ModelSpec) -> None:
    for f in [*spec.required_fields, *spec.optional_fields]:
        for lang in LANGS:
            assert f.words.label.get(lang) and f.words.hint.get(lang), (f.name, lang)
        assert f.label("en") != f.label("ru"), f.name


@pytest.mark.parametrize(("lang", "screen"), [
    ("en", "Nsfw checker?"),
    ("en", "Image urls needs a photo."),
    ("en", "Sound: True"),
    ("en", "Seed: send a number from -1 to 2.14748e+09"),
    ("en", "• Seed: 42.0"),
    ("en", "Choose aspect_ratio to start:"),
    ("en", "Voice: EkK5I93UQWFDigLMpZcX"),
    ("ru", "Выберите aspect ratio, чтобы начать:"),
    ("ru", "• Prompt: лиса"),
    ("ru", "Sound?"),
    ("ru", "Выберите duration…"),
    ("ru", "Сервис ответил: Image is too large"),
    ("en", "Speaking speed: send a number from 1.0 to 2"),
])
def test_the_check_catches_what_users_saw_before(lang: str, screen: str) -> None:
    assert CHECK.problems(lang, screen)


@pytest.mark.parametrize(("lang", "screen"), [
    ("ru", "Seedance 1.0 Pro: фото в видео\n• Длительность: 5 с\n• Разрешение: 720p · 1K · Квадрат HD"),
    ("ru", "Язык: код из двух букв, например ru или en. Отправьте /start."),
    ("en", "Speaking speed: send a number from 0.7 to 1.2.\n• Variation number: 2147483647"),
    ("ru", "Запись: https://example.com/input_0.mp3"),
    ("ru", "Лёгкая Seedream 5.0 от ByteDance; Sora 2 от OpenAI"),
])
def test_the_check_lets_human_words_brands_units_and_links_through(lang: str, screen: str) -> None:
    assert CHECK.problems(lang, screen) == []


def test_a_field_without_words_is_asked_in_raw_words_and_the_check_says_so() -> None:
    unworded = InputField("image_urls", "array-of-url", True, media={"kind": "image"}, max_items=4)
    question = questions.question("ru", unworded)
    assert question.text.startswith("Image urls")
    assert CHECK.problems("ru", question.text)


def test_an_offered_model_with_an_unworded_field_does_not_load(tmp_path: Path) -> None:
    raw = json.loads(CATALOGUE_PATH.read_text(encoding="utf-8"))
    z_image = next(m for m in raw["models"] if m["id"] == "z-image")
    z_image["inputs"].append({"name": "mystery_switch", "type": "boolean", "required": False})
    z_image["inputs"].append({"name": "nsfw_checker", "type": "boolean", "required": True})
    broken = tmp_path / "models.json"
    broken.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ValueError) as caught:
        load_catalogue(broken)
    assert "z-image: mystery_switch has no label (en)" in str(caught.value)
    assert "z-image: mystery_switch has no hint (ru)" in str(caught.value)
    assert "z-image: nsfw_checker is required, never asked and has no default" in str(caught.value)


@pytest.mark.parametrize(("field", "typed", "sent"), [
    ("seed", "42", 42),
    ("seed", " -1 ", -1),
    ("seed", "2147483647", 2147483647),
    ("guidance_scale", "2,5", 2.5),
])
def test_a_typed_number_keeps_its_kind_whole_numbers_stay_whole(field: str, typed: str, sent: Any) -> None:
    spec = CATALOGUE.get("bytedance/seedream") if field == "guidance_scale" else CATALOGUE.get(
        "bytedance/v1-lite-image-to-video")
    assert spec is not None
    f = spec.field(field)
    assert f is not None and f.type == "number"
    value, problem = parse_answer("en", spec, f, typed, None)
    assert problem is None and value == sent and type(value) is type(sent)
    assert json.dumps({field: value}) == json.dumps({field: sent})


def test_numbers_are_written_as_people_write_them() -> None:
    assert [questions.number("en", v) for v in (42.0, 2147483647.0, 0.5, 1e-7, -1, 12)] == [
        "42", "2147483647", "0.5", "0.0000001", "-1", "12"]
    assert questions.number("ru", 0.75) == "0,75"
    seed = CATALOGUE.get("bytedance/v1-lite-image-to-video").field("seed")  # type: ignore[union-attr]
    assert seed is not None
    assert questions.question("en", seed).text.startswith("Variation number: send a number from -1 to 2147483647.")


def test_durations_carry_their_unit_and_the_default_is_marked() -> None:
    spec = CATALOGUE.get("kling-2.6/text-to-video")
    assert spec is not None
    duration = spec.field("duration")
    assert duration is not None
    assert [label for _, label in questions.question("en", duration).choices] == ["5 s · default", "10 s"]
    assert [label for _, label in questions.question("ru", duration).choices] == ["5 с · по умолчанию", "10 с"]
    assert questions.summary("ru", spec, {"duration": "10", "sound": True}) == "• Звук: Да\n• Длительность: 10 с"


def test_yes_and_no_are_words_in_both_languages() -> None:
    spec = CATALOGUE.get("kling-2.6/text-to-video")
    assert spec is not None
    sound = spec.field("sound")
    assert sound is not None
    assert questions.question("en", sound) == questions.Question(
        "Sound: yes or no?\nMake sound together with the video.", ((0, "Yes"), (1, "No")))
    assert [label for _, label in questions.question("ru", sound).choices] == ["Да", "Нет"]


def test_voices_are_offered_by_name_and_raw_voice_ids_stay_valid() -> None:
    spec = CATALOGUE.get("elevenlabs/text-to-speech-multilingual-v2")
    assert spec is not None
    voice = spec.field("voice")
    assert voice is not None and voice.enum is not None and len(voice.enum) > 80
    offered = questions.offered_choices(voice)
    assert [v for _, v in offered] == list(voice.enum[:21])
    labels = [label for _, label in questions.question("en", voice).choices]
    assert labels[0] == "Rachel · calm woman, US · default" and all(" · " in label for label in labels)
    assert spec.validate({"text": "hi", "voice": voice.enum[-1]}) == []     # KIE still takes an id


@pytest.mark.parametrize("spec", OFFERED, ids=[s.id for s in OFFERED])
def test_internal_switches_are_never_asked_and_their_defaults_still_reach_kie(spec: ModelSpec) -> None:
    asked = {f.name for f in [*spec.required_fields, *spec.optional_fields]}
    assert asked.isdisjoint(INTERNAL)
    filled = spec.with_defaults({f.name: sample_answer("en", f) for f in spec.required_fields})
    assert [p for p in spec.validate(filled) if "is required" in p] == []


def test_seeds_are_offered_under_more_options_with_a_plain_name() -> None:
    spec = CATALOGUE.get("wan/2-7-image-pro")
    assert spec is not None
    seed = spec.field("seed")
    assert seed in spec.optional_fields and seed is not None
    assert (seed.label("en"), seed.label("ru")) == ("Variation number", "Номер варианта")


def test_buttons_share_a_row_only_when_their_labels_fit() -> None:
    short = [(v, v) for v in ("1:1", "4:3", "3:4", "16:9", "9:16")]
    assert [len(row) for row in questions.button_rows(short)] == [3, 2]
    marked = [("1:1 · по умолчанию", "a"), ("4:3", "b"), ("3:4", "c")]
    assert [len(row) for row in questions.button_rows(marked)] == [1, 2]


@pytest.mark.parametrize(("raw", "lang", "readable"), [
    (json.dumps({"taskId": "e989621f54392584b05867f87b160672", "text": "Hello there."}), "en", "Hello there."),
    (json.dumps({"language_code": "en", "text": "Hi. Hello.", "words": [
        {"text": "Hi.", "speaker_id": "speaker_0"}, {"text": " ", "speaker_id": "speaker_0"},
        {"text": "Hello.", "speaker_id": "speaker_1"}]}), "ru", "Говорящий 1: Hi.\nГоворящий 2: Hello."),
    (json.dumps({"character_id": "ch_42"}), "en",
     "Character ID: ch_42\nTo cast this character, give the ID in a Sora 2 video under ⚙️ More options → Characters."),
    (json.dumps("just words"), "en", "just words"),
    ("not json at all", "en", "not json at all"),
    (json.dumps({"result": {"transcript": "nested"}}), "en", "nested"),
    (None, "en", ""),
])
def test_a_text_result_reads_as_text_not_json(raw: str | None, lang: str, readable: str) -> None:
    assert questions.readable_result(lang, raw) == readable
