"""Inputs checked by what they are (#14), through a real instance and the simulators: a file
sent to a media step is read through the bot's download path and judged by its bytes, which win
over its name and MIME type; a file Telegram will not give is asked for again, and one over the
step's limit is refused without being downloaded."""
from __future__ import annotations

import pytest
import requests

from config.catalogue import ModelSpec, load_catalogue
from sim.kie import KieSim
from sim.kie_media import mp3_bytes, mp4_bytes, png_bytes
from sim.telegram import TelegramSim
from storage import conversations
from storage.conversations import Step
from storage.db import Database
from tests.support.harness import Instance
from tests.support.sample_files import pdf, wav
from tests.support.waiting import wait_until
from tests.support.wizard_driver import Driver

USER = 7201
CATALOGUE = load_catalogue()


def spec(model: str) -> ModelSpec:
    found = CATALOGUE.get(model)
    assert found is not None, model
    return found


def opened(telegram: TelegramSim, db: Database, model: str) -> Driver:
    """The user (with credits) at the model's card, asked its first question."""
    driver = Driver(telegram, db, spec(model), USER)
    driver.open_model()
    return driver


def newest_words(telegram: TelegramSim) -> str:
    bot = [m for m in telegram.chat(USER) if m.from_bot]
    return bot[-1].text or bot[-1].caption or ""


def asking(db: Database) -> str | None:
    return conversations.load(db, USER, USER).draft.asking


def answers(db: Database) -> dict[str, object]:
    return conversations.load(db, USER, USER).draft.answers


def test_a_pdf_labelled_jpeg_is_refused_at_a_photo_step_as_the_pdf_it_is(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    driver = opened(telegram, db, "recraft/remove-background")
    assert asking(db) == "image"
    driver.act(lambda: telegram.user_sends_document(USER, pdf(), mime_type="image/jpeg", file_name="photo.jpg"))
    assert newest_words(telegram) == ("Picture needs a photo, and this file is really a PDF file, whatever its name "
                                      "or type says. Please send a photo.")
    assert telegram.calls("getFile"), "the bytes were read"
    assert "image" not in answers(db) and asking(db) == "image"
    driver.act(lambda: telegram.user_sends_document(USER, png_bytes("cut-out"), mime_type="application/octet-stream",
                                                    file_name="scan"))
    assert "image" in answers(db), "PNG bytes with no useful label are the PNG they are"
    assert conversations.load(db, USER, USER).step is Step.CONFIRM


def test_a_video_step_refuses_an_image_document_and_takes_an_mp4(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    driver = opened(telegram, db, "topaz/video-upscale")
    assert asking(db) == "video_url"
    driver.act(lambda: telegram.user_sends_document(USER, png_bytes("still"), mime_type="image/png",
                                                    file_name="still.png"))
    assert newest_words(telegram).startswith("Video needs a video, and this is a photo.")
    driver.act(lambda: telegram.user_sends_document(USER, png_bytes("still"), mime_type="video/mp4",
                                                    file_name="clip.mp4"))
    assert newest_words(telegram).startswith("Video needs a video, and this file is really a photo")
    assert "video_url" not in answers(db)
    clip = mp4_bytes("holiday")
    driver.act(lambda: telegram.user_sends_document(USER, clip, mime_type="video/mp4", file_name="holiday.mp4"))
    assert "video_url" in answers(db)
    driver.confirm()
    [job] = wait_until(driver.jobs_once_final, timeout=30, what="the upscale job final")
    assert job.succeeded
    [task] = kie.tasks().values()
    assert requests.get(task["input"]["video_url"], timeout=10).content == clip


def test_an_audio_step_refuses_a_video_and_takes_a_wav_and_an_mp3(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    driver = opened(telegram, db, "elevenlabs/audio-isolation")
    assert asking(db) == "audio_url"
    driver.act(lambda: telegram.user_sends_document(USER, mp4_bytes("talk"), mime_type="video/mp4",
                                                    file_name="talk.mp4"))
    assert newest_words(telegram).startswith("Audio needs an audio file, and this is a video.")
    driver.act(lambda: telegram.user_sends_document(USER, png_bytes("cover"), mime_type="audio/mpeg",
                                                    file_name="song.mp3"))
    assert newest_words(telegram).startswith("Audio needs an audio file, and this file is really a photo")
    assert "audio_url" not in answers(db)
    driver.act(lambda: telegram.user_sends_document(USER, wav(), mime_type="audio/x-wav", file_name="voice.wav"))
    assert "audio_url" in answers(db)
    assert conversations.load(db, USER, USER).step is Step.CONFIRM
    # An MP3 its client could not name is taken all the same, by its bytes.
    Driver(telegram, db, spec("elevenlabs/speech-to-text"), USER, credits=0).open_model()
    driver.act(lambda: telegram.user_sends_document(USER, mp3_bytes("interview"),
                                                    mime_type="application/octet-stream", file_name="interview"))
    assert "audio_url" in answers(db)
    assert conversations.load(db, USER, USER).draft.model == "elevenlabs/speech-to-text"


@pytest.mark.parametrize("status", [400, 502])
def test_a_file_telegram_will_not_give_is_asked_for_again(
        bot: Instance, telegram: TelegramSim, db: Database, status: int) -> None:
    driver = opened(telegram, db, "recraft/remove-background")
    telegram.fail_next("getFile", status=status, description="Bad Request: file is temporarily unavailable")
    driver.act(lambda: telegram.user_sends_document(USER, png_bytes("x"), mime_type="image/png", file_name="x.png"))
    assert newest_words(telegram) == "I could not read this file from Telegram. Please send it again."
    assert "image" not in answers(db) and asking(db) == "image"
    driver.act(lambda: telegram.user_sends_document(USER, png_bytes("x"), mime_type="image/png", file_name="x.png"))
    assert "image" in answers(db)


def test_a_file_over_the_steps_limit_is_refused_without_being_downloaded(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    driver = opened(telegram, db, "recraft/remove-background")      # takes at most 5 MB
    big = png_bytes("big") + b"\x00" * (6 * 1024 * 1024)
    driver.act(lambda: telegram.user_sends_document(USER, big, mime_type="image/png", file_name="big.png"))
    assert newest_words(telegram).startswith("This file is 6.0 MB, and Picture takes at most 5 MB.")
    assert telegram.calls("getFile") == []


def test_outside_a_flow_a_pdf_named_as_a_picture_is_not_offered_for_editing(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    driver = Driver(telegram, db, spec("google/nano-banana-edit"), USER)
    driver.act(lambda: telegram.user_sends_document(USER, pdf(), mime_type="image/jpeg", file_name="photo.jpg",
                                                    caption="make it snow"))
    assert "this file is really a PDF file" in newest_words(telegram)
    assert conversations.load(db, USER, USER).step is Step.IDLE
