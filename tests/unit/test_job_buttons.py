"""The job controls' callback data and the progress message's words (bot/job_buttons.py,
bot/presenter.py): what is built parses back, what does not fit is not built, and the place
in the queue and the usual duration read right in both languages."""
from __future__ import annotations

import pytest

from bot import callback_data as cd
from bot import job_buttons as jb
from bot.presenter import english_ordinal, estimate_words, queued_words


@pytest.mark.parametrize("control", list(jb.Control))
def test_a_control_by_id_or_request_key_parses_back(control: jb.Control) -> None:
    by_id = jb.build(control, job_id=42)
    by_key = jb.build(control, request_key="regen:1234567890123456789")
    assert by_id is not None and by_key is not None
    assert jb.parse(by_id) == jb.JobButton(control, job_id=42)
    assert jb.parse(by_key) == jb.JobButton(control, request_key="regen:1234567890123456789")
    assert jb.PATTERN.match(by_id) and jb.PATTERN.match(by_key)
    assert cd.parse(by_id) is None      # the dialogue's parser leaves them to bot/job_controls


def test_a_request_key_too_long_for_callback_data_builds_nothing() -> None:
    assert jb.build(jb.Control.CANCEL, request_key="k" * 64) is None


@pytest.mark.parametrize("raw", [None, "", "jc", "jc:c", "jc:c:", "jc:x:j1", "jc:c:jx", "jc:c:z1", "job:regen:1"])
def test_anything_else_is_not_a_job_control(raw: str | None) -> None:
    assert jb.parse(raw) is None


def test_english_ordinals() -> None:
    assert [english_ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th"]


def test_the_place_in_the_queue_in_both_languages() -> None:
    assert queued_words("en", "Z-Image", 1, "").startswith("⏳ Z-Image: next in your queue")
    assert queued_words("en", "Z-Image", 2, "").startswith("⏳ Z-Image: 2nd in your queue")
    assert queued_words("ru", "Z-Image", 1, "").startswith("⏳ Z-Image: следующая в вашей очереди")
    assert queued_words("ru", "Z-Image", 3, "").startswith("⏳ Z-Image: 3-я в вашей очереди")


def test_the_usual_duration_measured_or_from_the_catalogue_and_when_it_is_slow() -> None:
    assert estimate_words("en", 11.6, 20.0, 30, None) == " · usually about 12 s"
    assert estimate_words("en", 11.6, 20.0, 30, 15) == " · usually about 12 s"
    assert estimate_words("en", 11.6, 20.0, 30, 21) == " · taking longer than usual (usually about 12 s)"
    assert estimate_words("ru", 0.2, 0.4, 30, None) == " · обычно около 1 с"
    assert estimate_words("en", None, None, 30, 5) == " · about 30 s"
    assert estimate_words("en", None, None, None, 5) == ""
