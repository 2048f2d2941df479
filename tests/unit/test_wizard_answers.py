"""What a user types for a wizard question becomes the field's type, or a plain-language reason."""
from __future__ import annotations

from typing import Any

import pytest

from bot.wizard import parse_answer
from config.catalogue import InputField, load_catalogue

SPEC = load_catalogue().get("z-image")
STEPS = InputField("steps", "integer", True, min=1, max=8)
GUIDANCE = InputField("guidance", "number", True, min=0, max=10)
IMAGE = InputField("image_url", "url", True, media={"kind": "image"})
IMAGES = InputField("image_urls", "array-of-url", True, media={"kind": "image"}, max_items=4)
TAGS = InputField("tags", "array-of-string", False)
PROMPT = InputField("prompt", "string", True, max_length=10)
STYLE = InputField("style", "string", False, min_length=3)


@pytest.mark.parametrize(("field", "raw", "current", "expected"), [
    (STEPS, " 4 ", None, 4),
    (GUIDANCE, "2,5", None, 2.5),
    (IMAGE, " https://a.example/x.png  https://b.example/y.png", None, "https://a.example/x.png"),
    (IMAGES, "https://b.example/y.png", ["https://a.example/x.png"],
     ["https://a.example/x.png", "https://b.example/y.png"]),
    (TAGS, "alpha, beta\ngamma,,", None, ["alpha", "beta", "gamma"]),
    (PROMPT, "  a fox", None, "  a fox"),
    (STYLE, "  noir  ", None, "noir"),
], ids=["integer", "number-with-comma", "url-first-link", "url-list-appends", "word-list", "prompt-as-typed",
        "text-stripped"])
def test_a_fitting_answer_becomes_the_fields_type(field: InputField, raw: str, current: Any, expected: Any) -> None:
    assert SPEC is not None
    assert parse_answer("en", SPEC, field, raw, current) == (expected, None)


@pytest.mark.parametrize(("field", "raw", "reason"), [
    (STEPS, "four", "Steps must be a whole number from 1 to 8."),
    (STEPS, "9", "Steps must be a whole number from 1 to 8."),
    (GUIDANCE, "nan", "Guidance must be a number from 0 to 10."),
    (GUIDANCE, "lots", "Guidance must be a number from 0 to 10."),
    (IMAGE, "ftp://a.example/x.png", "Please send a link that starts with http:// or https://, or upload the file."),
    (PROMPT, "   ", None),
    (PROMPT, "a very long fox", None),
    (STYLE, "ab", None),
], ids=["not-an-integer", "integer-out-of-range", "not-finite", "not-a-number", "not-a-link", "empty", "too-long",
        "too-short"])
def test_an_answer_that_does_not_fit_is_refused_with_a_reason(field: InputField, raw: str, reason: str | None) -> None:
    assert SPEC is not None
    value, problem = parse_answer("en", SPEC, field, raw, None)
    assert value is None and problem
    if reason is not None:
        assert problem == reason
