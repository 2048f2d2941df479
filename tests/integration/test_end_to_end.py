"""Z-Image from Telegram to the chat: the conversation and /imagine deliver one photo each."""
from __future__ import annotations

from sim.kie import KieSim
from sim.telegram import ChatMessage, TelegramSim
from storage.db import Database
from storage.jobs import recent_jobs
from tests.support.harness import Instance
from tests.support.waiting import wait_until

USER = 5001


def photos(chat: list[ChatMessage]) -> list[ChatMessage]:
    return [m for m in chat if m.from_bot and m.media == "photo"]


def test_the_menu_conversation_delivers_one_photo(bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    telegram.user_sends(USER, "/start")
    telegram.wait_for_chat(USER, lambda c: any("Create image" in b[0] for m in c for row in m.buttons for b in row))
    telegram.user_presses(USER, "Create image")
    telegram.wait_for_chat(USER, lambda c: any("Z-Image" in b[0] for m in c for row in m.buttons for b in row))
    telegram.user_presses(USER, "Z-Image")
    telegram.wait_for_chat(USER, lambda c: bool(c[-1].text and "describe" in c[-1].text))
    telegram.user_sends(USER, "a lighthouse at dawn")
    # Every start button carries ✅, free ones too (design.md §5).
    telegram.wait_for_chat(USER, lambda c: any(b[0] == "✅ 16:9" for m in c for row in m.buttons for b in row))
    telegram.user_presses(USER, "✅ 16:9")

    # One message per job: the progress message is gone once the photo is in the chat.
    chat = telegram.wait_for_chat(USER, lambda c: len(photos(c)) == 1 and not any(
        m.from_bot and m.text and ("generating" in m.text or "starting" in m.text) for m in c), timeout=10)
    assert not any(m.text and "done" in m.text for m in chat)
    photo = photos(chat)[0]
    assert any(b[0] == "🔁 Create another" for row in photo.buttons for b in row)
    [task] = kie.tasks().values()
    assert task["input"] == {"prompt": "a lighthouse at dawn", "aspect_ratio": "16:9"}
    assert telegram.file_bytes(photo.file_id or "").startswith(b"\x89PNG")
    # The progress message goes before the job records its delivery: wait for the record.
    job = wait_until(lambda: (jobs := recent_jobs(db, USER)) and jobs[0].terminal and jobs[0], timeout=10,
                     what="the delivery recorded")
    assert job.state.value == "delivered"


def test_imagine_delivers_one_photo_with_the_prompt_as_typed(bot: Instance, telegram: TelegramSim, kie: KieSim) -> None:
    telegram.user_sends(USER, "/imagine  a cat,  in a hat --ar 9:16")
    telegram.wait_for_chat(USER, lambda c: len(photos(c)) == 1, timeout=10)
    [task] = kie.tasks().values()
    assert task["input"] == {"prompt": "a cat,  in a hat", "aspect_ratio": "9:16"}


def test_a_prompt_over_1000_characters_gets_a_plain_language_message(bot: Instance, telegram: TelegramSim,
                                                                       kie: KieSim) -> None:
    telegram.user_sends(USER, "/imagine " + "x" * 1001)
    chat = telegram.wait_for_chat(USER, lambda c: any(m.from_bot and m.text and "1001" in m.text for m in c))
    assert any("at most 1000" in (m.text or "") for m in chat)
    assert kie.tasks() == {}


def test_polling_alone_delivers_when_no_callback_url_is_set(instance_factory, telegram: TelegramSim,
                                                             kie: KieSim) -> None:  # type: ignore[no-untyped-def]
    inst = instance_factory(callbacks=False)
    wait_until(lambda: inst.runtime.status.active, timeout=10)
    telegram.user_sends(USER, "/imagine a quiet harbour")
    telegram.wait_for_chat(USER, lambda c: len(photos(c)) == 1, timeout=10)
    assert kie.callback_attempts() == []
