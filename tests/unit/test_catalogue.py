"""The catalogue: every entry loads, and validation says what is allowed in plain words."""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from config.catalogue import CATALOGUE_PATH, ModelSpec, load_catalogue


def test_every_reference_model_is_in_the_catalogue_with_a_valid_schema() -> None:
    catalogue = load_catalogue()
    raw = json.loads(CATALOGUE_PATH.read_text())["models"]
    assert len(catalogue) == len(raw) == 109
    for model in catalogue:
        assert model.kind in {"image", "video", "audio", "text"}
        assert model.inputs, model.id
        for field in model.inputs:
            if field.enum and field.default is not None:
                assert field.default in field.enum, (model.id, field.name)


def test_z_image_accepts_a_good_input_and_explains_bad_ones() -> None:
    spec = load_catalogue().get("z-image")
    assert spec is not None and spec.offered
    assert spec.validate({"prompt": "a fox", "aspect_ratio": "16:9"}) == []
    assert spec.validate({"prompt": "x" * 1001, "aspect_ratio": "1:1"}) == [
        "prompt is too long: 1001 characters, at most 1000"]
    assert spec.validate({"prompt": "a", "aspect_ratio": "auto"}) == [
        "aspect_ratio must be one of: 1:1, 4:3, 3:4, 16:9, 9:16"]
    assert spec.validate({"aspect_ratio": "1:1"}) == ["prompt is required"]
    assert spec.validate({"prompt": "a", "aspect_ratio": "1:1", "seed": 3}) == ["seed is not a field of z-image"]


def test_defaults_fill_required_fields() -> None:
    spec = load_catalogue().get("z-image")
    assert spec is not None
    assert spec.with_defaults({"prompt": "a"}) == {"prompt": "a", "aspect_ratio": "1:1"}


def _entry(model_id: str, price: Any) -> dict[str, Any]:
    inputs = [{"name": "prompt", "type": "string", "required": True},
              {"name": "resolution", "type": "string", "required": False, "enum": ["1K", "2K"], "default": "1K"},
              {"name": "duration", "type": "string", "required": False}]
    return {"id": model_id, "kind": "image", "task": "text-to-image", "title": model_id, "inputs": inputs,
            "price": price, "offered": True}


def test_a_price_rule_is_checked_whole_and_every_problem_named() -> None:
    price = {"credits": "2.5.1", "unit": "minute", "count_field": "seconds", "by_field": "resolution",
             "by_value": {"1K": "1"}, "source": "", "date": "17/08/2026", "colour": "red"}
    with pytest.raises(ValueError) as caught:
        ModelSpec.from_json(_entry("m", price))
    message = str(caught.value)
    assert message.startswith("m: ")
    for says in ("unknown key 'colour'", "price.credits", "price.unit", "price.by_value", "price.source", "price.date"):
        assert says in message, says


@pytest.mark.parametrize(("price", "says"), [
    ({"credits": "1", "unit": "task", "count_field": "duration"}, "makes no sense for unit task"),
    ({"credits": "1", "unit": "second", "count_field": "prompt"}, "must be a number or a choice of numbers"),
    ({"credits": "1", "unit": "second"}, "must be a number or a choice of numbers"),
    ({"credits": "1", "unit": "1k_chars", "count_field": "script"}, "'script' is not an input of this model"),
    ({"credits": "1", "unit": "image", "by_field": "prompt", "by_value": {}}, "must be a choice or a yes/no field"),
    ({"credits": "2", "unit": "image", "by_field": "resolution", "by_value": {"1K": "1", "2K": "2"}}, "must be 1, the rate of the default"),
    ({"credits": "-1", "unit": "task"}, "at least 0"),
    ({"credits": 1.5, "unit": "task"}, "decimal string"),
], ids=["count for a task", "count of text", "duration without numbers", "characters of no field",
        "rate by free text", "credits not the default's rate", "negative", "float"])
def test_each_kind_of_bad_price_rule_is_refused(price: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        ModelSpec.from_json(_entry("m", {**price, "source": "s", "date": "2026-08-17"}))


def test_the_catalogue_refuses_to_load_with_bad_price_rules_listing_every_model(tmp_path: Path) -> None:
    good = {"credits": "1", "unit": "task", "source": "s", "date": "2026-08-17"}
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"models": [_entry("a", {**good, "unit": "hour"}), _entry("b", good),
                                           _entry("c", {**good, "date": "soon"})]}))
    with pytest.raises(ValueError) as caught:
        load_catalogue(path)
    lines = str(caught.value).splitlines()
    assert [line.split(":")[0] for line in lines[1:]] == ["a", "c"]


def test_price_credits_is_the_rate_of_the_default_choice() -> None:
    catalogue = load_catalogue()
    assert [catalogue.get(m).price_credits for m in ("z-image", "nano-banana-2")] == [Decimal("0.8"), Decimal(8)]
    assert catalogue.get("elevenlabs/sound-effect-v2").price_credits is None
