"""The conversation's typed draft: every field survives a round trip, and rows written by older
releases (missing keys, unknown keys, wrong types, retired steps) read as a usable draft."""
from __future__ import annotations

from typing import Any

import pytest

from kie.uploads import TelegramFile
from storage.conversations import Draft, Step


def test_every_field_survives_a_round_trip_through_json() -> None:
    draft = Draft(model="google/nano-banana-edit", id="0a1b2c3d4e",
                  answers={"prompt": "a fox", "image_urls": [TelegramFile("AgAD").to_json()], "steps": 4,
                           "guidance": 2.5, "nsfw_checker": False},
                  asking="image_urls", optional=True, request_message=41)
    assert Draft.from_json(draft.to_json()) == draft


def test_the_json_keeps_the_keys_older_releases_read() -> None:
    """A rollback during a conversation must find the row as the previous release wrote it."""
    stored = Draft(model="z-image", id="abc", answers={"prompt": "p"}, asking="prompt", optional=False).to_json()
    assert stored == {"model": "z-image", "draft": "abc", "input": {"prompt": "p"}, "asking": "prompt",
                      "optional": False}


@pytest.mark.parametrize(("stored", "expected"), [
    ({}, Draft()),
    ({"model": "z-image", "draft": "abc"}, Draft(model="z-image", id="abc")),
    ({"model": "z-image", "input": {"prompt": "p"}, "ratio": "16:9", "future_key": [1]},
     Draft(model="z-image", answers={"prompt": "p"})),
    ({"model": 7, "draft": None, "input": ["not", "a", "dict"], "asking": "", "optional": "yes"}, Draft()),
    ({"asking": None, "optional": True}, Draft(optional=True)),
    ({"request_message": "41"}, Draft()),
    ({"request_message": True}, Draft()),
    (None, Draft()),
    ("a string", Draft()),
], ids=["empty", "missing-keys", "unknown-keys", "wrong-types", "optional-only", "request-not-an-int",
        "request-a-bool", "null", "not-an-object"])
def test_a_row_from_another_release_reads_as_a_draft(stored: Any, expected: Draft) -> None:
    assert Draft.from_json(stored) == expected


def test_reading_a_draft_does_not_share_the_stored_answers() -> None:
    stored: dict[str, Any] = {"input": {"prompt": "p"}}
    Draft.from_json(stored).answers["prompt"] = "changed"
    assert stored["input"] == {"prompt": "p"}


@pytest.mark.parametrize("value", ["idle", "wizard", "confirm"])
def test_the_steps_are_the_strings_stored_today(value: str) -> None:
    assert Step.from_stored(value).value == value


@pytest.mark.parametrize("value", ["prompt", "ratio", "choose_model", ""])
def test_a_step_this_release_does_not_know_starts_over(value: str, caplog: pytest.LogCaptureFixture) -> None:
    assert Step.from_stored(value) is Step.IDLE
    assert [r.action for r in caplog.records] == ["conversation_unknown_step"]  # type: ignore[attr-defined]
