"""Issue #14's browser journey: a person on the Telegram simulator's chat page, in headless
Chromium, walks /start → Z-Image → a result with a real kiebot instance (leader) behind the
simulators, typing and clicking with mouse and keyboard events only (no Bot API shortcuts for
the user's side). The page is then compared by structure (who said what, of which kind, with
which buttons), never by pixels: one message per job, no keyboard left on a finished step, a
double-click answered with a toast, and Create another reopening the same model. Screenshots
are kept under the test's tmp_path for a human."""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import requests

from sim.telegram import TelegramSim
from storage.db import Database
from storage.jobs import recent_jobs
from tests.support.cdp import Chromium, Page
from tests.support.harness import Instance
from tests.support.waiting import wait_until

USER = 7301
STEP_TIMEOUT_S = 20.0
POLL_S = 0.05
FIRST, SECOND = "a lighthouse at dawn", "a harbour at night"
RESULT_KEYS = (("🔁 Regenerate", "✏️ Edit prompt"), ("🖼 Original quality", "🔁 Create another"), ("🏠 Menu",))


class Sender(StrEnum):
    USER = "user"
    BOT = "bot"
    SERVICE = "service"


class Kind(StrEnum):
    TEXT = "text"
    PHOTO = "photo"
    VIDEO = "video"
    AUDIO = "audio"
    DOCUMENT = "document"
    INVOICE = "invoice"


Keys = tuple[tuple[str, ...], ...]
Structure = tuple[Sender, Kind, str, str, Keys]


@dataclass(frozen=True)
class Shown:
    """One message as the page shows it: who sent it, its kind, the first and last lines of its
    words and its buttons row by row (what a person sees, not its pixels)."""

    message_id: int
    sender: Sender
    kind: Kind
    head: str
    tail: str
    buttons: Keys
    ready: bool         # its photo has decoded (always true without one)

    @property
    def labels(self) -> list[str]:
        return [label for row in self.buttons for label in row]

    @property
    def structure(self) -> Structure:
        return self.sender, self.kind, self.head, self.tail, self.buttons


# Every message in the log, top to bottom, as plain data.
SNAPSHOT = """[...document.querySelectorAll("#log .item")].map((item) => {
  const img = item.querySelector(".bubble img");
  const kind = img ? "photo" : item.querySelector(".bubble video") ? "video"
    : item.querySelector(".bubble audio") ? "audio" : item.querySelector(".bubble a[download]")
    ? "document" : item.querySelector(".invoice") ? "invoice" : "text";
  const words = item.classList.contains("service") ? item.textContent
    : item.querySelector(".bubble > .text, .invoice .title")?.innerText ?? "";
  const lines = words.trim().split("\\n");
  return {
    message_id: Number(item.dataset.messageId),
    sender: ["user", "bot", "service"].find((side) => item.classList.contains(side)),
    kind,
    head: lines[0],
    tail: lines[lines.length - 1],
    buttons: [...item.querySelectorAll(".keys .row")].map(
      (row) => [...row.children].map((key) => key.textContent)),
    ready: !img || (img.complete && img.naturalWidth > 0),
  };
})"""


def button_of(message_id: int, label: str) -> str:
    """JavaScript for the button `label` of message `message_id`."""
    return (f"""[...document.querySelectorAll('#log [data-message-id="{message_id}"] .keys button')]"""
            f".find((key) => key.textContent === {json.dumps(label)})")


class ChatPage:
    """The simulator's chat page as one person uses it: reads what it shows, clicks, types."""

    def __init__(self, page: Page) -> None:
        self.page = page

    def open(self, url: str, user: int) -> None:
        """Load the page and start a chat as `user`: type the id, click Start."""
        self.page.navigate(url)
        self.page.click('document.getElementById("new-user")')
        self.page.type_text(str(user))
        self.page.click('document.getElementById("start")')
        wait_until(lambda: self.page.evaluate('document.getElementById("title").textContent')
                   .endswith(f"you are user {user}"), STEP_TIMEOUT_S, "the chat to open", POLL_S)

    def shown(self) -> list[Shown]:
        return [Shown(m["message_id"], Sender(m["sender"]), Kind(m["kind"]), m["head"], m["tail"],
                      tuple(tuple(row) for row in m["buttons"]), m["ready"])
                for m in self.page.evaluate(SNAPSHOT)]

    def wait(self, condition: Callable[[list[Shown]], bool], what: str) -> list[Shown]:
        """Wait until the page shows what `condition` accepts; return what it shows. The failure
        says what the page showed last."""
        last: list[Shown] = []

        def check() -> list[Shown] | None:
            nonlocal last
            last = self.shown()
            return last if condition(last) else None
        try:
            found = wait_until(check, STEP_TIMEOUT_S, what, POLL_S)
        except AssertionError as exc:
            shown = "\n".join(f"  {m.message_id}: {m.structure}" for m in last)
            raise AssertionError(f"{exc}; the page shows:\n{shown}") from None
        assert found is not None
        return found

    def send(self, text: str) -> None:
        """Click the text box, type, press Enter; wait until the message shows in the chat."""
        before = len(self.shown())
        self.page.click('document.getElementById("text")')
        self.page.type_text(text)
        self.page.press_enter()
        self.wait(lambda shown: any(m.sender is Sender.USER and m.head == text for m in shown[before:]),
                  f"{text!r} in the chat")

    def tap(self, label: str, prefix: bool = False, clicks: int = 1) -> Shown:
        """Wait until the bot's newest message offers `label` (or, with `prefix`, a button starting
        with it) and click it; returns that message as it was."""
        def matches(key: str) -> bool:
            return key.startswith(label) if prefix else key == label

        def offered(shown: list[Shown]) -> bool:
            bot = [m for m in shown if m.sender is Sender.BOT]
            return bool(bot) and any(matches(key) for key in bot[-1].labels)
        newest = [m for m in self.wait(offered, f"a button {label!r}") if m.sender is Sender.BOT][-1]
        self.page.click(button_of(newest.message_id, next(k for k in newest.labels if matches(k))), clicks)
        return newest

    def mark_toasts(self) -> None:
        """Mark the toasts showing now, so that only a later one is new."""
        self.page.evaluate('document.querySelectorAll(".toast").forEach((t) => { t.dataset.seen = "1"; })')

    def new_toast(self) -> str:
        """The words of a toast shown since mark_toasts()."""
        found: str = wait_until(lambda: self.page.evaluate(
            'document.querySelector(".toast:not([data-seen])")?.textContent ?? null'),
            STEP_TIMEOUT_S, "a toast", POLL_S)
        return found

    def screenshot(self, path: Path) -> None:
        path.write_bytes(self.page.screenshot())
        print(f"screenshot for a human: {path}")


def results_settled(count: int) -> Callable[[list[Shown]], bool]:
    """`count` result photos shown (the newest decoded and last) and no progress message left."""
    def settled(shown: list[Shown]) -> bool:
        bot = [m for m in shown if m.sender is Sender.BOT]
        photos = [m for m in bot if m.kind is Kind.PHOTO]
        return (len(photos) == count and bot[-1] is photos[-1] and photos[-1].ready
                and not any(m.head.startswith("⏳") for m in bot))
    return settled


def bot_api(sim: TelegramSim, method: str, **params: Any) -> Any:
    """Call the Bot API as a bot would (for the page's own test, where the test is the bot)."""
    body = requests.post(f"{sim.url}/bot{sim.token}/{method}", json=params, timeout=10).json()
    assert body["ok"], body
    return body["result"]


def is_z_image_card(message: Shown) -> bool:
    """Z-Image's card, asking for a prompt with example prompts to use."""
    return (message.sender is Sender.BOT and message.head == "Z-Image" and bool(message.labels)
            and all(key.startswith("✨ Use this: ") for key in message.labels))


def test_a_person_walks_start_to_a_z_image_result_in_a_tidy_chat(
        bot: Instance, telegram: TelegramSim, db: Database, browser: Chromium, tmp_path: Path) -> None:
    chat = ChatPage(browser.new_page(width=1000, height=1000))
    chat.open(f"{telegram.url}/", USER)

    chat.send("/start")
    menu = chat.tap("🎨 Create image")
    chat.tap("Z-Image ·", prefix=True)
    card = chat.wait(lambda shown: is_z_image_card(shown[-1]), "the Z-Image card")[-1]
    # The menu, the model page and the card are one message, edited in place.
    assert card.message_id == menu.message_id and len(chat.shown()) == 2

    chat.send(FIRST)
    # A double-click on the start button: the second click is a repeated tap, answered with a
    # toast and nothing else. Telegram is slowed on edits so that the keyboard is still there
    # when the second click lands (a real client's edit takes a round trip, too).
    telegram.slow("editMessageText", 1.0)
    chat.mark_toasts()
    confirmation = chat.tap("✅ 16:9", clicks=2)
    assert chat.new_toast() == "Already started: the result will arrive here."
    telegram.slow("editMessageText", 0)

    shown = chat.wait(results_settled(1), "the result photo, the progress message gone")
    chat.screenshot(tmp_path / "first_result.png")
    assert [m.structure for m in shown] == [
        (Sender.USER, Kind.TEXT, "/start", "/start", ()),
        (Sender.BOT, Kind.TEXT, "Z-Image", f"Prompt: {FIRST}", ()),
        (Sender.USER, Kind.TEXT, FIRST, FIRST, ()),
        (Sender.BOT, Kind.TEXT, "Z-Image", "✅ Aspect ratio: 16:9", ()),
        (Sender.BOT, Kind.PHOTO, f"Z-Image: {FIRST}", f"Z-Image: {FIRST}", RESULT_KEYS),
    ]
    assert (shown[1].message_id, shown[3].message_id) == (card.message_id, confirmation.message_id)
    [job] = recent_jobs(db, USER)           # the double-click made one job
    assert job.succeeded and job.input == {"prompt": FIRST, "aspect_ratio": "16:9"}

    # Create another: the same model's card again, as a new message, with the ratio kept.
    chat.tap("🔁 Create another")
    chat.wait(lambda shown: len(shown) == 6 and is_z_image_card(shown[-1]), "the Z-Image card again")
    chat.send(SECOND)
    chat.tap("✅ Generate")
    shown = chat.wait(results_settled(2), "the second result photo, its progress message gone")
    chat.screenshot(tmp_path / "second_result.png")
    assert [(m.sender, m.kind, m.head, m.buttons) for m in shown[5:]] == [
        (Sender.BOT, Kind.TEXT, "Z-Image", ()),                 # the card, put away
        (Sender.USER, Kind.TEXT, SECOND, ()),
        (Sender.BOT, Kind.TEXT, "Z-Image", ()),                 # the confirmation, put away
        (Sender.BOT, Kind.PHOTO, f"Z-Image: {SECOND}", RESULT_KEYS),
    ]
    assert shown[5].tail == f"Prompt: {SECOND}"
    # No stale keyboard: above the newest message only results keep theirs (Regenerate and the
    # rest stay usable on every result, as in Telegram); every finished step has none.
    assert [m.structure for m in shown[:-1] if m.buttons and m.kind is not Kind.PHOTO] == []
    jobs = recent_jobs(db, USER)
    assert [(j.succeeded, j.model, j.input) for j in jobs] == [
        (True, "z-image", {"prompt": SECOND, "aspect_ratio": "16:9"}),
        (True, "z-image", {"prompt": FIRST, "aspect_ratio": "16:9"})]


def test_the_page_shows_the_answer_to_a_tap_as_a_toast_or_an_alert_like_telegram(
        telegram: TelegramSim, browser: Chromium) -> None:
    chat = ChatPage(browser.new_page())
    chat.open(f"{telegram.url}/", USER)
    chat.send("hi")
    [said] = bot_api(telegram, "getUpdates", timeout=5)
    keys = {"inline_keyboard": [[{"text": "Save", "callback_data": "save"},
                                 {"text": "Delete", "callback_data": "delete"}]]}
    bot_api(telegram, "sendMessage", chat_id=USER, text="What now?", reply_markup=keys)

    def answer_next_tap(**answer: Any) -> None:
        [tap] = bot_api(telegram, "getUpdates", offset=said["update_id"] + 1, timeout=5)
        bot_api(telegram, "getUpdates", offset=tap["update_id"] + 1, timeout=0)    # confirm it
        bot_api(telegram, "answerCallbackQuery", callback_query_id=tap["callback_query"]["id"], **answer)

    chat.mark_toasts()
    chat.tap("Save")
    answer_next_tap(text="Saved.")
    assert chat.new_toast() == "Saved."

    chat.tap("Delete")
    answer_next_tap(text="This cannot be undone.", show_alert=True)
    alert = 'document.getElementById("alert")'
    shown = wait_until(lambda: chat.page.evaluate(f'{alert}.open ? {alert}.querySelector("p").textContent : null'),
                       STEP_TIMEOUT_S, "the alert", POLL_S)
    assert shown == "This cannot be undone."
    chat.page.click(f'{alert}.querySelector("button")')
    wait_until(lambda: not chat.page.evaluate(f"{alert}.open"), STEP_TIMEOUT_S, "the alert dismissed", POLL_S)
    assert [m.structure for m in chat.shown()] == [
        (Sender.USER, Kind.TEXT, "hi", "hi", ()),
        (Sender.BOT, Kind.TEXT, "What now?", "What now?", (("Save", "Delete"),)),
    ]
