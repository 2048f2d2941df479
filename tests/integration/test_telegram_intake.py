"""The Telegram intake: never deaf behind one bad update, one busy chat never stalls another,
stored updates are swept on their own in polling mode, a refused button answer does not stop
the press, and stopping the intake leaves a half-handled update to the next leader."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sim.telegram import ChatMessage, TelegramSim
from storage import updates
from storage.db import Database
from tests.support.harness import Instance
from tests.support.waiting import wait_until

X, Y = 4201, 4202
SECRET = "webhook-secret-for-intake-tests"
TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"


def command(update_id: int, user: int, line: str) -> dict[str, Any]:
    """A private-chat command message as Telegram sends it."""
    return {"update_id": update_id, "message": {
        "message_id": update_id, "date": 0, "chat": {"id": user, "type": "private"},
        "from": {"id": user, "is_bot": False, "first_name": "T"}, "text": line,
        "entities": [{"type": "bot_command", "offset": 0, "length": len(line.split(maxsplit=1)[0])}]}}


def echo(tag: str) -> str:
    """A command whose reply names `tag`: there is no model called so."""
    return f"/imagine a picture --model {tag}"


def bot_texts(chat: list[ChatMessage]) -> list[str]:
    return [m.text or "" for m in chat if m.from_bot]


def answered(*tags: str) -> Callable[[list[ChatMessage]], bool]:
    return lambda chat: all(any(f"called {tag}." in t for t in bot_texts(chat)) for tag in tags)


def has_button(label: str) -> Callable[[list[ChatMessage]], bool]:
    return lambda chat: any(label in b[0] for m in chat if m.from_bot for row in m.buttons for b in row)


def greeted(telegram: TelegramSim, user: int) -> None:
    """The user opens the chat (the simulator knows it from then on) and gets the menu."""
    telegram.user_sends(user, "/start")
    telegram.wait_for_chat(user, has_button("Create image"), timeout=10)


def test_undecodable_stored_updates_are_set_aside_and_every_good_update_is_answered(
        instance_factory: Callable[..., Instance], telegram: TelegramSim, db: Database) -> None:
    inst = instance_factory(BOT_MODE="webhook", TELEGRAM_WEBHOOK_SECRET=SECRET)
    wait_until(lambda: inst.runtime.status.active, timeout=10, what="instance leads")
    greeted(telegram, X)
    bad = {
        9_000_002: {"update_id": 9_000_002, "message": {"text": "no chat, no date"}},
        9_000_004: {"update_id": 9_000_004, "message": "not an object"},
        9_000_006: {"update_id": 9_000_006, "callback_query": {"id": "1"}},
    }
    for update_id in range(9_000_001, 9_000_008):
        body = bad.get(update_id) or command(update_id, X, echo(f"good-{update_id}"))
        assert updates.store_update(db, update_id, body, "test", notify=False)

    good = [f"good-{u}" for u in (9_000_001, 9_000_003, 9_000_005, 9_000_007)]
    chat = telegram.wait_for_chat(X, answered(*good), timeout=15)
    replies = [t for t in bot_texts(chat) if "called good-" in t]
    assert [r.split("called ")[1].split(".")[0] for r in replies] == good
    failed = wait_until(lambda: len(f := updates.failed(db)) == 3 and f, what="three updates set aside")
    assert [u for u, _ in failed] == sorted(bad)
    assert all(reason and telegram.token not in reason for _, reason in failed)
    wait_until(lambda: updates.backlog(db) == 0, what="every stored update done")
    assert 'kiebot_telegram_updates_total{result="failed"} 3.0' in inst.get("/metrics").text


def test_a_busy_chat_does_not_stall_another_chat_and_keeps_its_own_order(
        bot: Instance, telegram: TelegramSim) -> None:
    busy = [f"x-{i}" for i in range(12)]
    for tag in busy:
        telegram.user_sends(X, echo(tag))
    telegram.user_sends(Y, "/start")

    chat = telegram.wait_for_chat(X, answered(*busy), timeout=40)
    replies = [t.split("called ")[1].split(".")[0] for t in bot_texts(chat) if "called x-" in t]
    assert replies == busy
    telegram.wait_for_chat(Y, has_button("Create image"), timeout=40)
    sends = [c for c in telegram.calls("sendMessage") if c.status == 200]
    y_reply = next(i for i, c in enumerate(sends) if c.params["chat_id"] == Y)
    x_last = next(i for i, c in enumerate(sends) if f"called {busy[-1]}." in str(c.params.get("text")))
    assert y_reply < x_last


def test_an_update_stored_while_polling_an_empty_telegram_is_handled_without_a_new_update(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    greeted(telegram, X)
    telegram.wait_for_polling()
    polls = len(telegram.calls("getUpdates"))
    # As a deposed leader leaves it: stored, confirmed to Telegram, never handled.
    assert updates.store_update(db, 9_100_001, command(9_100_001, X, echo("left-behind")), "old-leader", notify=True)
    telegram.wait_for_chat(X, answered("left-behind"), timeout=10)
    answered_polls = [c for c in telegram.calls("getUpdates")[polls:] if c.response.get("result")]
    assert answered_polls == []


def test_a_button_press_whose_answer_telegram_refuses_still_does_what_it_asked(
        bot: Instance, telegram: TelegramSim) -> None:
    greeted(telegram, X)
    telegram.fail_next("answerCallbackQuery", 1, status=400, description=TOO_OLD)
    telegram.user_presses(X, "Create image")
    chat = telegram.wait_for_chat(X, has_button("Z-Image"), timeout=10)
    [refused] = telegram.calls("answerCallbackQuery")
    assert refused.status == 400
    assert not any("went wrong" in t.lower() for t in bot_texts(chat))


def test_stopping_the_intake_lets_a_reply_on_the_wire_finish_and_records_it(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    """A deploy while a reply is on its way: the handler finishes (bounded) and its update is
    recorded, so the next term does not answer it a second time."""
    greeted(telegram, X)
    epoch = bot.runtime.status.epoch
    assert epoch is not None
    telegram.slow("sendMessage", 2.0)
    telegram.peak_in_flight = 0
    telegram.user_sends(X, echo("midway"))
    wait_until(lambda: telegram.peak_in_flight >= 1, timeout=10, what="the reply is on its way")

    bot.runtime.bot.set_epoch(None)
    assert not [n for n in loop_tasks(bot) if n.startswith(("intake-", "chat-lane-"))]
    assert updates.unprocessed(db) == []
    telegram.slow("sendMessage", 0)
    bot.runtime.bot.set_epoch(epoch)         # the next term has nothing left to do
    telegram.user_sends(X, echo("after"))
    telegram.wait_for_chat(X, answered("after"))
    assert sum(1 for t in bot_texts(telegram.chat(X)) if "called midway." in t) == 1


def loop_tasks(inst: Instance) -> list[str]:
    """The names of the tasks alive on the bot's asyncio loop."""
    async def names() -> list[str]:
        return sorted(t.get_name() for t in asyncio.all_tasks())

    return asyncio.run_coroutine_threadsafe(names(), inst.runtime.bot.loop).result(timeout=5)
