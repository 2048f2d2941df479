"""The curated fields of config/models.json: labels, category, timing, price, result kind, offer.

Reads the JSON directly (not through config/catalogue.py) so these checks hold whatever the loader does.
"""
from __future__ import annotations

import datetime
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

MODELS_PATH = Path(__file__).resolve().parents[2] / "config" / "models.json"

CATEGORIES = {"image", "image_edit", "video", "audio", "tools"}
RESULT_KINDS = {"photo", "video", "audio", "document", "text"}
LANGUAGES = ("en", "ru")
NAME_MAX = 40
DESCRIPTION_MAX = 160
TYPICAL_TIME_RANGE_S = {
    "image": (10, 40), "image_edit": (15, 40), "video": (60, 300), "audio": (20, 120), "tools": (10, 60),
}
# Input types a chat wizard can ask for: typed text, a choice, a yes/no, an upload or a pasted link.
ASKABLE_TYPES = {"string", "integer", "number", "boolean", "url", "array-of-url", "array-of-string"}
CYRILLIC = re.compile(r"[А-Яа-яЁё]")


def _load() -> list[dict[str, Any]]:
    return json.loads(MODELS_PATH.read_text(encoding="utf-8"))["models"]


MODELS = _load()
IDS = [m["id"] for m in MODELS]


def test_the_catalogue_has_109_models_with_unique_ids() -> None:
    assert len(MODELS) == 109
    assert len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_every_model_has_the_curated_fields_with_the_right_types(model: dict[str, Any]) -> None:
    assert model["category"] in CATEGORIES
    assert model["result_kind"] in RESULT_KINDS
    assert isinstance(model["typical_time_s"], int) and not isinstance(model["typical_time_s"], bool)
    assert "price_credits" not in model and "price_hint_credits" not in model  # replaced by "price"
    assert model["price"] is None or isinstance(model["price"], dict)
    assert isinstance(model["offered"], bool)
    assert isinstance(model["labels"], dict) and set(model["labels"]) == set(LANGUAGES)


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_every_model_has_a_name_and_description_in_both_languages(model: dict[str, Any]) -> None:
    for language in LANGUAGES:
        label = model["labels"][language]
        assert set(label) == {"name", "description"}, language
        name, description = label["name"], label["description"]
        assert isinstance(name, str) and name.strip() == name and name, language
        assert isinstance(description, str) and description.strip() == description and description, language
        assert len(name) <= NAME_MAX, (language, len(name))
        assert len(description) <= DESCRIPTION_MAX, (language, len(description))


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_russian_descriptions_are_written_in_cyrillic(model: dict[str, Any]) -> None:
    assert CYRILLIC.search(model["labels"]["ru"]["description"])
    # A Russian name may be just the brand ("Seedance 2.0"), but then it equals the English one.
    ru_name = model["labels"]["ru"]["name"]
    assert CYRILLIC.search(ru_name) or ru_name == model["labels"]["en"]["name"]


def test_no_label_is_repeated_across_models() -> None:
    for language in LANGUAGES:
        names = [m["labels"][language]["name"] for m in MODELS]
        assert len(set(names)) == len(names), language


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_typical_time_is_within_the_range_for_its_category(model: dict[str, Any]) -> None:
    low, high = TYPICAL_TIME_RANGE_S[model["category"]]
    assert low <= model["typical_time_s"] <= high


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_result_kind_agrees_with_the_result_media_type(model: dict[str, Any]) -> None:
    media_type = model["result"]["media_type"]
    if media_type is not None and media_type.startswith("image/"):
        expected = {"photo"}
    elif media_type == "video/mp4":
        expected = {"video"}
    elif media_type == "audio/mpeg":
        expected = {"audio"}
    else:
        expected = {"document", "text"}
    assert model["result_kind"] in expected, media_type


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_category_agrees_with_the_output_kind(model: dict[str, Any]) -> None:
    allowed = {
        "image": {"image", "image_edit", "tools"},
        "video": {"video", "tools"},
        "audio": {"audio", "tools"},
        "text": {"tools"},
    }[model["kind"]]
    assert model["category"] in allowed


@pytest.mark.parametrize("model", [m for m in MODELS if m["category"] == "image_edit"],
                         ids=[m["id"] for m in MODELS if m["category"] == "image_edit"])
def test_image_edit_models_require_an_input_image(model: dict[str, Any]) -> None:
    assert any(
        f["required"] and f["type"] in {"url", "array-of-url"} and (f.get("media") or {}).get("kind") == "image"
        for f in model["inputs"]
    )


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_offered_models_have_no_reason_and_the_others_explain_why_not(model: dict[str, Any]) -> None:
    if model["offered"]:
        assert "not_offered_reason" not in model
    else:
        reason = model.get("not_offered_reason")
        assert isinstance(reason, str) and reason.strip() and reason.rstrip().endswith(".")


@pytest.mark.parametrize("model", [m for m in MODELS if m["offered"]], ids=[m["id"] for m in MODELS if m["offered"]])
def test_every_required_input_of_an_offered_model_can_be_asked_in_chat(model: dict[str, Any]) -> None:
    for f in model["inputs"]:
        if f["required"]:
            assert f["type"] in ASKABLE_TYPES, f["name"]
        if f["type"] in {"url", "array-of-url"}:
            assert (f.get("media") or {}).get("kind") in {"image", "video", "audio"}, f["name"]


@pytest.mark.parametrize("model", [m for m in MODELS if m["price"]], ids=[m["id"] for m in MODELS if m["price"]])
def test_every_price_says_its_figures_in_decimal_strings_with_a_source_and_a_date(model: dict[str, Any]) -> None:
    price = model["price"]
    amounts = [price["credits"], *price.get("by_value", {}).values()]
    assert all(isinstance(a, str) and Decimal(a) >= 0 for a in amounts)  # strings: no float rounding
    assert isinstance(price["source"], str) and len(price["source"]) > 10
    assert datetime.date(2025, 1, 1) <= datetime.date.fromisoformat(price["date"]) <= datetime.date(2026, 12, 31)


def test_every_offered_model_but_one_unpriceable_has_a_price() -> None:
    unpriced = {m["id"] for m in MODELS if m["offered"] and not m["price"]}
    assert unpriced == {"elevenlabs/sound-effect-v2"}  # no public KIE rate card gives its price


def test_at_least_100_models_are_offered_including_z_image() -> None:
    offered = {m["id"] for m in MODELS if m["offered"]}
    assert len(offered) >= 100
    assert "z-image" in offered


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_every_enum_default_is_one_of_its_options(model: dict[str, Any]) -> None:
    for f in model["inputs"]:
        if f.get("enum") is not None and f.get("default") is not None:
            assert f["default"] in f["enum"], f["name"]


def test_the_file_keeps_its_formatting() -> None:
    text = MODELS_PATH.read_text(encoding="utf-8")
    assert text == json.dumps(json.loads(text), indent=1, ensure_ascii=False) + "\n"
