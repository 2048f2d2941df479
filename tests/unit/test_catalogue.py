"""The catalogue: every entry loads, and validation says what is allowed in plain words."""
from __future__ import annotations

import json

from config.catalogue import CATALOGUE_PATH, load_catalogue


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
