"""The dialogue's manners (#14), through a real instance and the simulators: a tidy chat (menus
and pages edited in place, finished steps put away, stale taps answered with a toast), honest
commands (/lang ru, /models with ids and prices, Create another), /imagine that sets each
model's own shape field, inputs checked by what they are, discovery (commands menu, /help,
examples on cards, recent models, offers for stray text and photos) and groups."""
from __future__ import annotations

from typing import Any

import pytest

from bot import questions
from config.catalogue import load_catalogue
from sim.kie import KieSim
from sim.kie_media import png_bytes
from sim.telegram import ChatMessage, TelegramSim
from storage import conversations, ledger
from storage.conversations import Step
from storage.db import Database
from storage.jobs import Job, recent_jobs
from tests.support.harness import Instance
from tests.support.sample_files import gif
from tests.support.waiting import wait_until

USER = 7101
OTHER = 7102
GROUP = -7100
CATALOGUE = load_catalogue()


# --- helpers -------------------------------------------------------------------------------------
def bot_messages(telegram: TelegramSim, chat: int = USER) -> list[ChatMessage]:
    return [m for m in telegram.chat(chat) if m.from_bot]


def labels(message: ChatMessage) -> list[str]:
    return [b[0] for row in message.buttons for b in row]


def screen(telegram: TelegramSim, chat: int = USER) -> tuple[int, tuple[int, str, Any] | None]:
    """How many messages the bot has in the chat and what the newest one shows."""
    bot = bot_messages(telegram, chat)
    return len(bot), (bot[-1].message_id, bot[-1].text or bot[-1].caption or "", bot[-1].buttons) if bot else None


def act(telegram: TelegramSim, action: Any, chat: int = USER) -> None:
    """Do one thing and wait for the bot's answer: a new message, or its newest one edited."""
    before = screen(telegram, chat)
    action()
    telegram.wait_for_chat(chat, lambda c: screen(telegram, chat) != before, timeout=15)


def delivered(telegram: TelegramSim, db: Database, count: int, chat: int = USER) -> list[Job]:
    """`count` final jobs, their results in the chat and their progress messages gone."""
    jobs = final_jobs(db, count)
    telegram.wait_for_chat(chat, lambda c: sum(1 for m in c if m.from_bot and m.media) == count
                           and not any((m.text or "").startswith("⏳") for m in c if m.from_bot), timeout=15)
    return jobs


def newest(telegram: TelegramSim, chat: int = USER) -> ChatMessage:
    return bot_messages(telegram, chat)[-1]


def message(telegram: TelegramSim, message_id: int, chat: int = USER) -> ChatMessage:
    """Message `message_id` of the chat as it reads now."""
    return next(m for m in telegram.chat(chat) if m.message_id == message_id)


def wait_toast(telegram: TelegramSim, words: str) -> None:
    telegram.wait_for_call("answerCallbackQuery", predicate=lambda c: words in c.params.get("text", ""), timeout=15)


def final_jobs(db: Database, count: int, user: int = USER) -> list[Job]:
    def done() -> list[Job]:
        jobs = recent_jobs(db, user)
        return jobs if len(jobs) == count and all(j.terminal for j in jobs) else []

    return wait_until(done, timeout=30, what=f"{count} final job(s)")


def open_model(telegram: TelegramSim, category: str, name: str) -> None:
    act(telegram, lambda: telegram.user_sends(USER, "/start"))
    act(telegram, lambda: telegram.user_presses(USER, category))
    while not any(label.startswith(f"{name} ·") for label in labels(newest(telegram))):
        act(telegram, lambda: telegram.user_presses(USER, "More ➡️"))
    act(telegram, lambda: telegram.user_presses(USER, f"{name} ·"))


# --- a tidy chat ---------------------------------------------------------------------------------
def test_menus_and_model_pages_are_edited_in_place(bot: Instance, telegram: TelegramSim) -> None:
    act(telegram, lambda: telegram.user_sends(USER, "/start"))
    [menu] = bot_messages(telegram)
    act(telegram, lambda: telegram.user_presses(USER, "Create image"))
    assert "(1/" in (newest(telegram).text or "")
    act(telegram, lambda: telegram.user_presses(USER, "More ➡️"))
    assert "(2/" in (newest(telegram).text or "")
    act(telegram, lambda: telegram.user_presses(USER, "⬅️ Back"))
    act(telegram, lambda: telegram.user_presses(USER, "🏠 Menu"))
    [shown] = bot_messages(telegram)
    assert shown.message_id == menu.message_id and shown.edited
    assert "Create video" in " ".join(labels(shown))
    assert len(telegram.calls("editMessageText")) == 4
    assert [c.params["chat_id"] for c in telegram.calls("sendMessage")] == [USER]


def test_an_answered_question_shows_the_choice_and_loses_its_buttons(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    spec = CATALOGUE.get("flux-2/pro-text-to-image")
    assert spec is not None
    ratio = spec.field("aspect_ratio")
    assert ratio is not None and ratio.required and spec.required_fields[-1].name != "aspect_ratio"
    open_model(telegram, "Create image", spec.name("en"))
    card = newest(telegram)
    assert any(label.startswith("✨ Use this") for label in labels(card))
    act(telegram, lambda: telegram.user_sends(USER, "a quiet harbour"))
    pick = questions.choice_label("en", ratio, "16:9")
    question = newest(telegram)
    assert pick in labels(question)
    act(telegram, lambda: telegram.user_presses(USER, pick))
    wait_until(lambda: not message(telegram, question.message_id).buttons, what="the answered question put away")
    answered = message(telegram, question.message_id)
    assert answered.text == f"{ratio.label('en')}: {questions.shown('en', ratio, '16:9')}"
    # The card's prompt was typed: its example buttons are gone and it shows the answer.
    wait_until(lambda: not message(telegram, card.message_id).buttons, what="the card put away")
    typed = message(telegram, card.message_id)
    assert (typed.text or "").endswith(": a quiet harbour") and spec.name("en") in (typed.text or "")
    assert conversations.load(db, USER, USER).draft.answers["aspect_ratio"] == "16:9"


@pytest.mark.parametrize("status", [500, 502])
def test_a_failed_put_away_of_a_started_confirmation_is_no_apology(
        bot: Instance, telegram: TelegramSim, db: Database, status: int) -> None:
    """Putting a finished step away is cosmetic: when Telegram refuses that edit, the job the
    tap started still runs and delivers, and nobody is told that something went wrong and to
    try again (which would start, and charge, a second one)."""
    ledger.grant(db, USER, 10_000, "test money")
    act(telegram, lambda: telegram.user_sends(USER, "/imagine a red kite --model google/nano-banana"))
    telegram.fail_next("editMessageText", 1, status=status, description="Server Error")
    telegram.user_presses(USER, "✅ Generate")
    [job] = delivered(telegram, db, 1)
    assert job.succeeded
    assert [c.status for c in telegram.calls("editMessageText")][:1] == [status]
    act(telegram, lambda: telegram.user_sends(USER, "/help"))   # the chat is handled in order
    assert not any("went wrong" in (m.text or "").lower() for m in bot_messages(telegram))
    assert len(recent_jobs(db, USER)) == 1


def test_a_repeated_tap_on_generate_is_a_toast_and_one_job(bot: Instance, telegram: TelegramSim, db: Database) -> None:
    ledger.grant(db, USER, 10_000, "test money")
    act(telegram, lambda: telegram.user_sends(USER, "/imagine a red kite --model google/nano-banana"))
    assert "✅ Generate ·" in " ".join(labels(newest(telegram)))
    telegram.user_presses(USER, "✅ Generate")
    telegram.user_presses(USER, "✅ Generate")
    wait_toast(telegram, "Already started")
    [job] = delivered(telegram, db, 1)
    confirmation = next(m for m in bot_messages(telegram) if "a red kite" in (m.text or ""))
    assert confirmation.buttons == []
    # No instruction left behind without its button: it gave way to what happened.
    assert (confirmation.text or "").endswith("✅ Started.") and "Tap ✅" not in (confirmation.text or "")
    assert not any("already" in (m.text or "").lower() for m in bot_messages(telegram))
    assert job.input == {"prompt": "a red kite", "image_size": "1:1"}


# --- honest commands -----------------------------------------------------------------------------
def test_create_another_reopens_the_same_model_with_the_last_choices(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    telegram.user_sends(USER, "/imagine a lantern --ar 4:3")
    delivered(telegram, db, 1)
    act(telegram, lambda: telegram.user_presses(USER, "Create another"))
    conv = conversations.load(db, USER, USER)
    assert (conv.step, conv.draft.model, conv.draft.asking) == (Step.WIZARD, "z-image", "prompt")
    assert conv.draft.answers == {"aspect_ratio": "4:3"}
    assert "Z-Image" in (newest(telegram).text or "")
    act(telegram, lambda: telegram.user_sends(USER, "a second lantern"))
    act(telegram, lambda: telegram.user_presses(USER, "✅ Generate"))
    jobs = final_jobs(db, 2)
    assert jobs[0].input == {"prompt": "a second lantern", "aspect_ratio": "4:3"}


def test_lang_with_a_code_switches_at_once(bot: Instance, telegram: TelegramSim) -> None:
    act(telegram, lambda: telegram.user_sends(USER, "/lang ru"))
    assert (newest(telegram).text or "").startswith("Язык: русский.")
    assert "🎨 Создать изображение" in labels(newest(telegram))
    act(telegram, lambda: telegram.user_sends(USER, "/lang en"))
    assert (newest(telegram).text or "").startswith("Language: English.")
    act(telegram, lambda: telegram.user_sends(USER, "/lang"))
    assert labels(newest(telegram)) == ["English", "Русский"]


def test_models_lists_ids_and_prices_pages_in_place_and_searches(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    act(telegram, lambda: telegram.user_sends(USER, "/models"))
    first = newest(telegram)
    assert "• Z-Image — z-image · free 3/day" in (first.text or "")
    assert "--model" in (first.text or "")
    act(telegram, lambda: telegram.user_presses(USER, "More ➡️"))
    second = newest(telegram)
    assert second.message_id == first.message_id and "(2/" in (second.text or "")
    assert "z-image ·" not in (second.text or "")

    act(telegram, lambda: telegram.user_sends(USER, "/models banana"))
    found = newest(telegram).text or ""
    assert "google/nano-banana ·" in found and "nano-banana-pro ·" in found and "z-image" not in found
    act(telegram, lambda: telegram.user_sends(USER, "/models google edit"))      # a provider and a word
    found = newest(telegram).text or ""
    assert "google/nano-banana-edit" in found and "google/nano-banana ·" not in found
    act(telegram, lambda: telegram.user_sends(USER, "/models qwzx"))
    assert "No model matches" in (newest(telegram).text or "")
    act(telegram, lambda: telegram.user_sends(USER, "/models banana edit"))
    act(telegram, lambda: telegram.user_presses(USER, "Nano Banana Edit"))       # a name opens the model
    assert conversations.load(db, USER, USER).draft.model == "google/nano-banana-edit"


# --- /imagine ------------------------------------------------------------------------------------
def test_imagine_sets_each_models_own_shape_field_and_takes_short_names(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    ledger.grant(db, USER, 100_000, "test money")
    act(telegram, lambda: telegram.user_sends(USER, "/imagine a dog --model nano-banana --ar 16:9"))
    act(telegram, lambda: telegram.user_presses(USER, "✅ Generate"))
    delivered(telegram, db, 1)
    act(telegram, lambda: telegram.user_sends(USER, "/imagine a tower --model ideogram/v3-text-to-image --ar 9:16"))
    assert "✅" in " ".join(labels(newest(telegram)))
    telegram.user_presses(USER, "✅")
    jobs = final_jobs(db, 2)
    inputs = {job.model: job.input for job in jobs}
    assert inputs["google/nano-banana"] == {"prompt": "a dog", "image_size": "16:9"}
    assert inputs["ideogram/v3-text-to-image"]["image_size"] == "portrait_16_9"
    sent = {task["model"]: task["input"] for task in kie.tasks().values()}
    assert sent["google/nano-banana"] == {"prompt": "a dog", "image_size": "16:9"}


def test_imagine_refuses_what_it_cannot_honour_and_says_why(
        bot: Instance, telegram: TelegramSim, kie: KieSim) -> None:
    act(telegram, lambda: telegram.user_sends(USER, "/imagine a dog --model google/nano-banana --ar 7:5"))
    said = newest(telegram).text or ""
    assert "7:5 is not an aspect ratio Nano Banana offers" in said and "16:9" in said and "21:9" in said
    act(telegram, lambda: telegram.user_sends(USER, "/imagine a dog --model nano --ar 1:1"))
    said = newest(telegram).text or ""
    assert "could be several models" in said and "google/nano-banana" in said and "nano-banana-pro" in said
    act(telegram, lambda: telegram.user_sends(USER, "/imagine a cat --model hailuo/02-text-to-video-pro --ar 16:9"))
    assert "has no aspect ratio setting" in (newest(telegram).text or "")
    act(telegram, lambda: telegram.user_sends(USER, "/imagine a cat --ar wide"))
    assert "write it as W:H" in (newest(telegram).text or "")
    assert kie.tasks() == {}


# --- inputs checked by what they are -------------------------------------------------------------
def test_a_pdf_is_refused_at_a_photo_step_and_an_image_document_is_taken(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    ledger.grant(db, USER, 100_000, "test money")
    open_model(telegram, "Edit image", "Nano Banana Edit")
    act(telegram, lambda: telegram.user_sends(USER, "make the sky purple"))
    assert conversations.load(db, USER, USER).draft.asking == "image_urls"
    act(telegram, lambda: telegram.user_sends_document(USER, b"%PDF-1.4\n%\xe2\xe3\n1 0 obj\n",
                                                       mime_type="application/pdf", file_name="invoice.pdf"))
    refusal = newest(telegram).text or ""
    assert "this is a PDF file" in refusal and "Please send a photo" in refusal
    assert "image_urls" not in conversations.load(db, USER, USER).draft.answers
    act(telegram, lambda: telegram.user_sends_document(USER, gif(), mime_type="image/gif", file_name="loop.gif"))
    assert "takes JPEG, PNG, WEBP files, and this one is GIF" in (newest(telegram).text or "")
    # PNG bytes labelled image/gif: a file is judged by its bytes, not its label (issue 14), so
    # this is the PNG it is, which the model takes (a GIF's own bytes are refused just above).
    act(telegram, lambda: telegram.user_sends_document(USER, png_bytes("as-a-file"), mime_type="image/gif",
                                                       file_name="loop.gif"))
    assert len(conversations.load(db, USER, USER).draft.answers["image_urls"]) == 1
    act(telegram, lambda: telegram.user_presses(USER, "Done"))
    act(telegram, lambda: telegram.user_presses(USER, "✅ Generate"))
    [job] = final_jobs(db, 1)
    assert job.succeeded
    [task] = kie.tasks().values()
    [url] = task["input"]["image_urls"]
    assert url.startswith(kie.upload_url)


# --- discovery -----------------------------------------------------------------------------------
def test_the_command_menu_is_set_in_english_and_russian(bot: Instance, telegram: TelegramSim) -> None:
    calls = telegram.wait_for_call("setMyCommands", count=2, timeout=10)
    by_lang = {c.params.get("language_code"): {cmd["command"]: cmd["description"] for cmd in c.params["commands"]}
               for c in calls}
    assert set(by_lang) == {None, "ru"}
    for commands in by_lang.values():
        assert {"start", "imagine", "models", "lang", "help", "balance", "buy", "cancel", "history"} <= set(commands)
    assert by_lang[None]["models"] == "Every model with its id and price"
    assert by_lang["ru"]["models"] == "Все модели с id и ценами"


def test_help_explains_the_bot_with_examples(bot: Instance, telegram: TelegramSim) -> None:
    act(telegram, lambda: telegram.user_sends(USER, "/help"))
    shown = newest(telegram).text or ""
    assert "/imagine a lighthouse at dawn --ar 16:9" in shown and "--model nano-banana" in shown
    assert "/models" in shown and "/lang ru" in shown


def test_an_example_prompt_on_the_card_is_used_with_one_tap(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    open_model(telegram, "Create image", "Z-Image")
    card = newest(telegram)
    assert "For example:" in (card.text or "") and "💡 “a lighthouse on a cliff at sunset, oil painting”" in (card.text or "")
    act(telegram, lambda: telegram.user_presses(USER, "✨ Use this: a lighthouse"))
    conv = conversations.load(db, USER, USER)
    assert conv.step is Step.CONFIRM
    assert conv.draft.answers == {"prompt": "a lighthouse on a cliff at sunset, oil painting"}
    wait_until(lambda: not message(telegram, card.message_id).buttons, what="the card put away")
    used = message(telegram, card.message_id)
    assert used.buttons == [] and (used.text or "").endswith(": a lighthouse on a cliff at sunset, oil painting")


def test_the_main_menu_starts_with_the_users_recent_models(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    telegram.user_sends(USER, "/imagine a fox")
    delivered(telegram, db, 1)
    act(telegram, lambda: telegram.user_sends(USER, "/start"))
    first, *rest = labels(newest(telegram))
    assert first == "🕘 Z-Image" and rest[0] == "🎨 Create image"
    act(telegram, lambda: telegram.user_presses(USER, "🕘 Z-Image"))
    assert conversations.load(db, USER, USER).draft.model == "z-image"


def test_stray_text_is_offered_as_a_z_image_prompt(bot: Instance, telegram: TelegramSim, db: Database) -> None:
    act(telegram, lambda: telegram.user_sends(USER, "a castle in the clouds"))
    offer = newest(telegram)
    assert (offer.text or "").startswith("✨ Generate this?") and "a castle in the clouds" in (offer.text or "")
    assert labels(offer) and all(label.startswith("✅") for label in labels(offer))
    telegram.user_presses(USER, "✅ 16:9")
    [job] = final_jobs(db, 1)
    assert (job.model, job.input) == ("z-image", {"prompt": "a castle in the clouds", "aspect_ratio": "16:9"})


def test_a_photo_with_a_caption_is_offered_as_an_edit(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    ledger.grant(db, USER, 100_000, "test money")
    act(telegram, lambda: telegram.user_sends_photo(USER, png_bytes("holiday"), caption="make it snow"))
    offer = newest(telegram)
    assert (offer.text or "").startswith("🖌 Edit this photo with Nano Banana Edit?")
    act(telegram, lambda: telegram.user_presses(USER, "✅ Generate"))
    [job] = final_jobs(db, 1)
    assert job.model == "google/nano-banana-edit" and job.input["prompt"] == "make it snow"
    assert len(job.input["image_urls"]) == 1 and job.succeeded


# --- groups --------------------------------------------------------------------------------------
def test_in_a_group_only_what_is_addressed_to_the_bot_is_answered_and_results_keep_to_their_requester(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    username = telegram.bot_username
    telegram.user_sends(USER, "hello everyone", chat_id=GROUP)
    telegram.user_sends(USER, "/start@other_bot", chat_id=GROUP)
    telegram.user_sends(USER, "/unknown", chat_id=GROUP)
    telegram.user_sends(USER, f"/imagine@{username} a group portrait", chat_id=GROUP)
    [job] = delivered(telegram, db, 1, chat=GROUP)
    assert job.chat_id == GROUP and job.input["prompt"] == "a group portrait"
    assert [m.media for m in bot_messages(telegram, GROUP)] == ["photo"]        # nothing said to the chatter

    telegram.user_presses(OTHER, "Regenerate", chat_id=GROUP)
    wait_toast(telegram, "Only the person who asked for this")
    assert len(recent_jobs(db, USER)) == 1 and recent_jobs(db, OTHER) == []
    assert [m.media for m in bot_messages(telegram, GROUP)] == ["photo"]


def test_a_command_for_another_bot_is_ignored_in_a_private_chat(bot: Instance, telegram: TelegramSim) -> None:
    telegram.user_sends(USER, "/start@other_bot")
    act(telegram, lambda: telegram.user_sends(USER, "/help"))
    assert len(bot_messages(telegram)) == 1 and "/models" in (newest(telegram).text or "")

