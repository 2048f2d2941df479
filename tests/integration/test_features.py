"""What users do around generations: upload an image, get plain-language input errors, look
back with /history, cancel, regenerate, edit the prompt, switch language, and wait their turn."""
from __future__ import annotations

from actors.job_state import JobState
from config.catalogue import load_catalogue
from sim.kie import KieSim
from sim.kie_media import png_bytes
from sim.kie_tasks import Fate
from sim.telegram import ChatMessage, TelegramSim
from storage.db import Database
from storage.jobs import recent_jobs
from tests.support.harness import Instance
from tests.support.waiting import wait_until
from tests.support.wizard_driver import Driver

USER = 4301
CATALOGUE = load_catalogue()


def photos(chat: list[ChatMessage]) -> list[ChatMessage]:
    return [m for m in chat if m.from_bot and m.media == "photo"]


def last_text(telegram: TelegramSim) -> str:
    return next((m.text or "" for m in reversed(telegram.chat(USER)) if m.from_bot and m.text), "")


def final(db: Database, count: int) -> list:  # type: ignore[type-arg]
    return wait_until(lambda: (js := recent_jobs(db, USER)) and len(js) == count and all(j.terminal for j in js)
                      and js, timeout=30, what=f"{count} final jobs")


def test_an_image_the_user_uploads_reaches_kie_through_the_upload_host(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    spec = CATALOGUE.get("google/nano-banana-edit")
    assert spec is not None
    driver = Driver(telegram, db, spec, USER)
    driver.open_model()
    driver.act(lambda: telegram.user_sends(USER, "make the sky purple"))
    picture = png_bytes("user-upload")
    driver.act(lambda: telegram.user_sends_photo(USER, picture))
    driver.walk()
    [job] = final(db, 1)
    assert job.state == JobState.DELIVERED
    [task] = kie.tasks().values()
    [url] = task["input"]["image_urls"]
    assert url.startswith(kie.upload_url)
    assert len(kie.calls("file-stream-upload")) == 1


def test_a_number_out_of_range_or_not_a_number_gets_a_plain_message(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    spec = CATALOGUE.get("bytedance/seedance-2-fast")
    assert spec is not None
    driver = Driver(telegram, db, spec, USER)
    driver.open_model()
    driver.walk(stop_at_confirm=True)
    driver.act(lambda: telegram.user_presses(USER, "More options"))
    driver.act(lambda: telegram.user_presses(USER, "Duration"))
    for wrong in ("soon", "99", "2.5"):
        driver.act(lambda w=wrong: telegram.user_sends(USER, w))
        assert last_text(telegram) == "Duration must be a whole number from 4 to 15 s."
    driver.act(lambda: telegram.user_sends(USER, "6"))
    assert "• Duration: 6 s" in last_text(telegram)
    driver.walk()
    [job] = final(db, 1)
    assert job.input["duration"] == 6 and type(job.input["duration"]) is int      # 6, never 6.0
    [task] = kie.tasks().values()
    assert type(task["input"]["duration"]) is int, f"KIE was sent {task['input']['duration']!r}"


def test_a_ratio_the_model_does_not_offer_is_explained(bot: Instance, telegram: TelegramSim, kie: KieSim) -> None:
    telegram.user_sends(USER, "/imagine a square circle --ar 7:3")
    telegram.wait_for_chat(USER, lambda c: "7:3 is not an aspect ratio" in last_text(telegram))
    assert "1:1, 4:3, 3:4, 16:9, 9:16" in last_text(telegram)
    assert kie.tasks() == {}


def test_history_lists_jobs_and_resends_a_result_by_its_file_id(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    telegram.user_sends(USER, "/imagine a postcard")
    [job] = final(db, 1)
    assert job.result_file_ids
    telegram.user_sends(USER, "/history")
    telegram.wait_for_chat(USER, lambda c: "#1 Z-Image · done · a postcard" in last_text(telegram))
    telegram.user_presses(USER, f"#{job.id}")
    telegram.wait_for_chat(USER, lambda c: len(photos(c)) == 2)
    resend = telegram.calls("sendPhoto")[-1]
    assert resend.params["photo"] == job.result_file_ids[0]


def test_cancel_ends_a_job_that_was_not_submitted_yet(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    kie.set_maintenance(True)
    telegram.user_sends(USER, "/imagine during maintenance")
    wait_until(lambda: kie.calls("createTask"), timeout=10, what="a refused createTask")
    telegram.user_sends(USER, "/cancel")
    [job] = final(db, 1)
    assert job.state == JobState.CANCELLED
    telegram.wait_for_chat(USER, lambda c: any("had not started" in (m.text or "") for m in c))
    kie.set_maintenance(False)
    assert kie.tasks() == {}


def test_regenerate_runs_the_same_inputs_again(bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    telegram.user_sends(USER, "/imagine a lantern --ar 4:3")
    final(db, 1)
    telegram.user_presses(USER, "Regenerate")
    jobs = final(db, 2)
    assert jobs[0].input == jobs[1].input == {"prompt": "a lantern", "aspect_ratio": "4:3"}
    telegram.wait_for_chat(USER, lambda c: len(photos(c)) == 2)


def test_edit_prompt_keeps_the_other_choices(bot: Instance, telegram: TelegramSim, db: Database) -> None:
    telegram.user_sends(USER, "/imagine a red door --ar 9:16")
    final(db, 1)
    telegram.user_presses(USER, "Edit prompt")
    telegram.wait_for_chat(USER, lambda c: "describe" in last_text(telegram))
    telegram.user_sends(USER, "a blue door")
    telegram.wait_for_chat(USER, lambda c: "Generate" in [b[0][2:] for m in c[-1:] for row in m.buttons for b in row])
    telegram.user_presses(USER, "Generate")
    jobs = final(db, 2)
    assert jobs[0].input == {"prompt": "a blue door", "aspect_ratio": "9:16"}


def test_lang_switches_the_bot_to_russian(bot: Instance, telegram: TelegramSim) -> None:
    telegram.user_sends(USER, "/lang")
    telegram.wait_for_chat(USER, lambda c: "Choose your language" in last_text(telegram))
    telegram.user_presses(USER, "Русский")
    telegram.wait_for_chat(USER, lambda c: "Язык: русский." in last_text(telegram))
    telegram.user_sends(USER, "/help")
    telegram.wait_for_chat(USER, lambda c: "/history – ваши последние генерации" in last_text(telegram))


def test_a_russian_telegram_user_is_answered_in_russian_from_the_start(bot: Instance, telegram: TelegramSim) -> None:
    telegram.user_sends(USER, "/start", language_code="ru")
    telegram.wait_for_chat(USER, lambda c: "Привет!" in last_text(telegram))


def test_one_generation_at_a_time_by_default_and_the_next_one_waits_its_turn(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    # Was a refusal ("still running"); now the second waits in the queue (test_controls.py).
    kie.script_next(Fate(outcome="stuck"))
    telegram.user_sends(USER, "/imagine the first")
    wait_until(lambda: kie.tasks(), timeout=10)
    telegram.user_sends(USER, "/imagine the second")
    telegram.wait_for_chat(USER, lambda c: "next in your queue" in last_text(telegram))
    first, second = wait_until(lambda: len(js := recent_jobs(db, USER)) == 2 and sorted(js, key=lambda j: j.id),
                               timeout=10, what="two jobs")
    assert (first.state, second.state) == (JobState.SUBMITTED, JobState.QUEUED)
    assert len(kie.tasks()) == 1


def test_nothing_a_user_types_crashes_a_handler(bot: Instance, telegram: TelegramSim) -> None:
    # (A command for another bot, "/start@other_bot", is left unanswered on purpose: test_dialogue_manners.)
    nasty = ["/imagine", "/imagine --ar", "/imagine --model", "/imagine x --model nope/nope", "\u0000",
             "/imagine " + "🦊" * 1200, "/history extra args", "/lang", "--ar 1:1", "/cancel", "/unknown_command"]
    for message in nasty:
        telegram.user_sends(USER, message)
    wait_until(lambda: len([m for m in telegram.chat(USER) if m.from_bot]) >= len(nasty), timeout=30,
               what="an answer to every message")
    assert not any("went wrong" in (m.text or "") for m in telegram.chat(USER) if m.from_bot)




def test_stats_answers_admins_only(instance_factory, telegram: TelegramSim, db: Database) -> None:  # type: ignore[no-untyped-def]
    inst = instance_factory(ADMIN_IDS="4399")
    wait_until(lambda: inst.runtime.status.active, timeout=10)
    telegram.user_sends(USER, "/stats")
    telegram.wait_for_chat(USER, lambda c: "did not understand" in last_text(telegram))
    telegram.user_sends(4399, "/imagine admin picture")
    wait_until(lambda: [j for j in recent_jobs(db, 4399) if j.terminal], timeout=20)
    telegram.user_sends(4399, "/stats")
    telegram.wait_for_chat(4399, lambda c: "delivered: 1" in (c[-1].text or ""))
