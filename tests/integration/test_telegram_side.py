"""The Telegram side: durable intake (polling and webhook), restarts mid-conversation,
idempotent buttons, and sending that respects Telegram's answers."""
from __future__ import annotations

import json
from collections.abc import Callable

import requests

from actors.job_state import JobState
from sim.kie import KieSim
from sim.kie_tasks import Fate
from sim.telegram import ChatMessage, TelegramSim
from storage.db import Database
from storage.jobs import recent_jobs
from tests.support.harness import Instance
from tests.support.waiting import wait_until

USER = 4101
SECRET = "webhook-secret-for-tests"


def photos(chat: list[ChatMessage]) -> list[ChatMessage]:
    return [m for m in chat if m.from_bot and m.media == "photo"]


def has_button(label: str) -> Callable[[list[ChatMessage]], bool]:
    return lambda chat: any(label in b[0] for m in chat if m.from_bot for row in m.buttons for b in row)


def final_jobs(db: Database, user: int, count: int = 1) -> list:  # type: ignore[type-arg]
    return wait_until(lambda: (js := recent_jobs(db, user)) and len(js) == count and all(j.terminal for j in js)
                      and js, timeout=20, what=f"{count} final job(s) for {user}")


def webhook_bot(instance_factory: Callable[..., Instance], telegram: TelegramSim) -> Instance:
    inst = instance_factory(BOT_MODE="webhook", TELEGRAM_WEBHOOK_SECRET=SECRET)
    wait_until(lambda: inst.runtime.status.active, timeout=10)
    wait_until(lambda: telegram.calls("setWebhook"), timeout=10, what="webhook registered")
    return inst


def test_webhook_mode_registers_its_url_with_the_secret_and_delivers(
        instance_factory: Callable[..., Instance], telegram: TelegramSim) -> None:
    inst = webhook_bot(instance_factory, telegram)
    [call] = telegram.calls("setWebhook")
    assert call.params["url"] == f"{inst.url}/telegram/webhook" and call.params["secret_token"] == SECRET
    telegram.user_sends(USER, "/imagine a webhook picture")
    telegram.wait_for_chat(USER, lambda c: len(photos(c)) == 1, timeout=15)
    assert telegram.calls("getUpdates") == []


def test_a_webhook_update_with_a_wrong_or_missing_secret_is_refused(
        instance_factory: Callable[..., Instance], telegram: TelegramSim, db: Database) -> None:
    inst = webhook_bot(instance_factory, telegram)
    update = {"update_id": 555, "message": {"message_id": 1, "date": 0, "chat": {"id": USER, "type": "private"},
                                            "from": {"id": USER, "is_bot": False, "first_name": "T"},
                                            "text": "/imagine should not run"}}
    for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
        resp = requests.post(f"{inst.url}/telegram/webhook", json=update, headers=headers, timeout=5)
        assert resp.status_code == 403
    assert recent_jobs(db, USER) == []


def test_a_redelivered_webhook_update_creates_one_job(
        instance_factory: Callable[..., Instance], telegram: TelegramSim, db: Database) -> None:
    inst = webhook_bot(instance_factory, telegram)
    telegram.user_sends(USER, "/start")      # the chat must exist at the simulator
    telegram.wait_for_chat(USER, has_button("Create image"))
    update = {"update_id": 9_000_001, "message": {
        "message_id": 50, "date": 0, "chat": {"id": USER, "type": "private"},
        "from": {"id": USER, "is_bot": False, "first_name": "T"}, "text": "/imagine once only",
        "entities": [{"type": "bot_command", "offset": 0, "length": 8}]}}
    for _ in range(3):
        resp = requests.post(f"{inst.url}/telegram/webhook", data=json.dumps(update),
                             headers={"X-Telegram-Bot-Api-Secret-Token": SECRET,
                                      "Content-Type": "application/json"}, timeout=5)
        assert resp.status_code == 200
    [job] = final_jobs(db, USER)
    assert job.state == JobState.DELIVERED
    assert len(photos(telegram.chat(USER))) == 1


def test_a_restart_in_the_middle_of_a_conversation_continues_it(
        instance_factory: Callable[..., Instance], telegram: TelegramSim) -> None:
    first = instance_factory()
    wait_until(lambda: first.runtime.status.active, timeout=10)
    telegram.user_sends(USER, "/start")
    telegram.wait_for_chat(USER, has_button("Create image"))
    telegram.user_presses(USER, "Create image")
    telegram.wait_for_chat(USER, has_button("Z-Image"))
    telegram.user_presses(USER, "Z-Image")
    telegram.wait_for_chat(USER, lambda c: "describe" in (c[-1].text or ""))
    first.runtime.stop()

    second = instance_factory()
    wait_until(lambda: second.runtime.status.active, timeout=10)
    telegram.user_sends(USER, "a bridge in the fog")
    telegram.wait_for_chat(USER, has_button("3:4"), timeout=10)
    telegram.user_presses(USER, "3:4")
    telegram.wait_for_chat(USER, lambda c: len(photos(c)) == 1, timeout=15)


def test_a_double_tap_on_generate_creates_one_job(bot: Instance, telegram: TelegramSim, db: Database) -> None:
    telegram.user_sends(USER, "/start")
    telegram.wait_for_chat(USER, has_button("Create image"))
    telegram.user_presses(USER, "Create image")
    telegram.wait_for_chat(USER, has_button("Z-Image"))
    telegram.user_presses(USER, "Z-Image")
    telegram.wait_for_chat(USER, lambda c: "describe" in (c[-1].text or ""))
    telegram.user_sends(USER, "twice tapped")
    telegram.wait_for_chat(USER, has_button("1:1"))
    telegram.user_presses(USER, "1:1")
    telegram.user_presses(USER, "1:1")
    # The second tap is told so in a toast, never in a new message (#14: a tidy chat).
    toasts = telegram.wait_for_call("answerCallbackQuery", predicate=lambda c: "Already started" in c.params.get(
        "text", ""), timeout=15)
    chat = telegram.wait_for_chat(USER, lambda c: len(photos(c)) == 1, timeout=15)
    assert len(toasts) == 1
    assert len(recent_jobs(db, USER)) == 1
    assert len(photos(chat)) == 1
    assert not any("already" in (m.text or "").lower() for m in chat if m.from_bot)
    answered = telegram.calls("answerCallbackQuery")
    assert len(answered) == len([c for c in telegram.calls("getUpdates")
                                 for u in c.response.get("result", []) if "callback_query" in u])


def test_a_button_from_an_old_message_gets_a_clear_hint(bot: Instance, telegram: TelegramSim) -> None:
    """(#14) The hint is a toast on the button, not a message, and the old buttons go away."""
    telegram.user_sends(USER, "/start")
    telegram.wait_for_chat(USER, has_button("Create image"))
    telegram.user_presses(USER, "Create image")
    telegram.wait_for_chat(USER, has_button("Z-Image"))
    telegram.user_presses(USER, "Z-Image")
    telegram.wait_for_chat(USER, lambda c: "describe" in (c[-1].text or ""))
    telegram.user_sends(USER, "an old draft")
    telegram.wait_for_chat(USER, has_button("1:1"))
    telegram.user_sends(USER, "/start")
    telegram.wait_for_chat(USER, lambda c: "Hi!" in (c[-1].text or ""))
    before = [m for m in telegram.chat(USER) if m.from_bot]
    telegram.user_presses(USER, "1:1")
    [toast] = telegram.wait_for_call("answerCallbackQuery", predicate=lambda c: bool(c.params.get("text")))
    assert "out of date" in toast.params["text"]
    telegram.wait_for_chat(USER, lambda c: not has_button("1:1")(c))
    assert len([m for m in telegram.chat(USER) if m.from_bot]) == len(before)


def test_a_user_who_blocked_the_bot_makes_the_job_undeliverable_without_retries(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    kie.script_next(Fate(duration_s=1.0))
    telegram.user_sends(USER, "/imagine for a user who leaves")
    wait_until(lambda: [j for j in recent_jobs(db, USER) if j.state == JobState.SUBMITTED], timeout=10)
    telegram.block_bot(USER)
    [job] = final_jobs(db, USER)
    assert job.state == JobState.UNDELIVERABLE
    assert len(telegram.calls("sendPhoto")) == 1


def test_telegram_429_is_obeyed_with_its_retry_after(bot: Instance, telegram: TelegramSim, db: Database) -> None:
    telegram.fail_next("sendPhoto", 1, status=429, retry_after=2)
    telegram.user_sends(USER, "/imagine patience")
    [job] = final_jobs(db, USER)
    assert job.state == JobState.DELIVERED
    first, second = telegram.calls("sendPhoto")
    assert first.status == 429 and second.status == 200
    assert second.at - first.at >= 2.0
    assert len(photos(telegram.chat(USER))) == 1


def test_a_dropped_response_is_never_resent_blindly_under_at_most_once(
        instance_factory: Callable[..., Instance], telegram: TelegramSim, db: Database) -> None:
    inst = instance_factory(DELIVERY_POLICY="at_most_once")
    wait_until(lambda: inst.runtime.status.active, timeout=10)
    telegram.drop_next_response("sendPhoto", 1)
    telegram.user_sends(USER, "/imagine maybe delivered")
    [job] = final_jobs(db, USER)
    assert job.state == JobState.DELIVERY_UNKNOWN
    assert len(telegram.calls("sendPhoto")) == 1
    assert "kiebot_uncertain_deliveries_total 1.0" in inst.get("/metrics").text


def test_a_dropped_response_is_resent_once_after_the_grace_period_under_at_least_once(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    telegram.drop_next_response("sendPhoto", 1)
    telegram.user_sends(USER, "/imagine surely delivered")
    [job] = final_jobs(db, USER)
    assert job.state == JobState.DELIVERED
    first, second = telegram.calls("sendPhoto")
    assert second.at - first.at >= 1.0      # KIEBOT_DELIVERY_GRACE_S=1 in tests
    assert "kiebot_uncertain_deliveries_total 1.0" in bot.get("/metrics").text


def test_a_url_telegram_will_not_fetch_is_uploaded_instead(bot: Instance, telegram: TelegramSim, db: Database) -> None:
    telegram.fail_next("sendPhoto", 1, status=400, description="Bad Request: failed to get HTTP URL content")
    telegram.user_sends(USER, "/imagine a picture behind a firewall")
    [job] = final_jobs(db, USER)
    assert job.state == JobState.DELIVERED
    by_url, uploaded = telegram.calls("sendPhoto")
    assert by_url.status == 400 and str(by_url.params["photo"]).startswith("http")
    assert uploaded.status == 200 and not str(uploaded.params.get("photo", "")).startswith("http")
    assert telegram.calls("sendChatAction")[-1].params["action"] == "upload_photo"
    [photo] = photos(telegram.chat(USER))
    assert telegram.file_bytes(photo.file_id or "").startswith(b"\x89PNG")
