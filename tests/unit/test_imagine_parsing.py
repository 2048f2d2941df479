"""/imagine: the prompt goes to the model exactly as typed, flags removed."""
from __future__ import annotations

import pytest

from bot.imagine import parse_imagine


@pytest.mark.parametrize(("message", "prompt", "flags"), [
    ("/imagine a red fox", "a red fox", {}),
    ("/imagine a red fox --ar 16:9", "a red fox", {"ar": "16:9"}),
    ("/imagine --ar 9:16 a  red fox", "a  red fox", {"ar": "9:16"}),
    ("/imagine@kiebot_bot a fox --model z-image --ar=4:3", "a fox", {"model": "z-image", "ar": "4:3"}),
    ("/imagine", "", {}),
    ("/imagine   ", "", {}),
    ("/imagine Кот в сапогах, 4k", "Кот в сапогах, 4k", {}),
    ("/imagine line one\nline two", "line one\nline two", {}),
])
def test_parse_imagine(message: str, prompt: str, flags: dict[str, str]) -> None:
    assert parse_imagine(message) == (prompt, flags)
