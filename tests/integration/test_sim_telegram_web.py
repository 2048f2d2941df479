"""The Telegram simulator's web chat page, driven by a person's clicks in headless Chromium.

The browser side goes through the page's DOM over the DevTools protocol; the bot side is plain
Bot API calls over HTTP, as the bot would make them. Also covers the routes the page relies on:
the chat list, media bytes with their type, and input validation of the control API.
"""
from __future__ import annotations

import json
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sim.telegram import TelegramSim
from tests.support.cdp import Chromium
from tests.support.waiting import wait_until

USER = 777
KEYBOARD = {"inline_keyboard": [[{"text": "🎨 Image", "callback_data": "kind:image"},
                                 {"text": "🎬 Video", "callback_data": "kind:video"}]]}


def png(width: int, height: int) -> bytes:
    """A real PNG of one colour, so the browser can decode it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\x33\x90\xec" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def bot_api(sim: TelegramSim, method: str, files: dict[str, Any] | None = None,
            **params: Any) -> Any:
    """Call the Bot API as the bot would; multipart when uploading."""
    url = f"{sim.url}/bot{sim.token}/{method}"
    if files:
        data = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
        response = requests.post(url, data=data, files=files, timeout=10)
    else:
        response = requests.post(url, json=params, timeout=10)
    body = response.json()
    assert body["ok"], body
    return body["result"]


@pytest.fixture
def sim() -> Iterator[TelegramSim]:
    with TelegramSim() as running:
        yield running


# What the page shows once the bot's reply is in: null until the photo has decoded and the
# chat list has caught up (a chat gets its name from the simulator once its first message is in).
BOT_REPLY_SHOWN = """(() => {
  const img = document.querySelector(".item.bot img");
  const buttons = [...document.querySelectorAll(".item.bot .keys button")];
  if (!img || !img.complete || img.naturalWidth === 0 || buttons.length < 2) return null;
  if (document.querySelector("#chats button").textContent.startsWith("New user")) return null;
  return {
    texts: [...document.querySelectorAll(".item .text")].map((node) => node.innerText),
    sides: [...document.querySelectorAll(".item")].map((node) => node.classList[1]),
    buttons: buttons.map((node) => node.textContent),
    image: [img.naturalWidth, img.naturalHeight],
    chats: [...document.querySelectorAll("#chats button")].map((node) => node.textContent),
  };
})()"""


def test_a_person_chats_with_the_bot_in_the_browser(sim: TelegramSim, browser: Chromium,
                                                     tmp_path: Path) -> None:
    page = browser.new_page()
    page.navigate(f"{sim.url}/")
    page.evaluate(f"""(() => {{
      document.getElementById("new-user").value = "{USER}";
      document.getElementById("start").click();
      document.getElementById("text").value = "hello";
      document.getElementById("send").click();
    }})()""")

    sent = bot_api(sim, "getUpdates", timeout=5)
    assert [(u["message"]["from"]["id"], u["message"]["text"]) for u in sent] == [(USER, "hello")]
    menu = bot_api(sim, "sendMessage", chat_id=USER, text="Hi!\nWhat shall we make?",
                   reply_markup=KEYBOARD)
    bot_api(sim, "sendPhoto", chat_id=USER, caption="a sample",
            files={"photo": ("sample.png", png(96, 64), "image/png")})

    shown = wait_until(lambda: page.evaluate(BOT_REPLY_SHOWN), timeout=10,
                       what="the bot's text, buttons and decoded photo in the page", interval=0.05)
    assert shown == {"texts": ["hello", "Hi!\nWhat shall we make?", "a sample"],
                     "sides": ["user", "bot", "bot"], "buttons": ["🎨 Image", "🎬 Video"],
                     "image": [96, 64], "chats": [f"Test {USER}"]}
    screenshot = tmp_path / "telegram_web.png"
    screenshot.write_bytes(page.screenshot())
    assert screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    print(f"screenshot: {screenshot}")

    page.evaluate("""[...document.querySelectorAll(".keys button")]
                     .find((node) => node.textContent === "🎨 Image").click()""")
    pressed = bot_api(sim, "getUpdates", offset=sent[-1]["update_id"] + 1, timeout=5)
    assert [u["callback_query"]["data"] for u in pressed] == ["kind:image"]
    assert pressed[0]["callback_query"]["from"]["id"] == USER
    assert pressed[0]["callback_query"]["message"]["message_id"] == menu["message_id"]

    bot_api(sim, "editMessageText", chat_id=USER, message_id=menu["message_id"], text="Image it is")
    edited = wait_until(lambda: page.evaluate(f"""(() => {{
      const item = document.querySelector('[data-message-id="{menu["message_id"]}"]');
      return item && !item.querySelector(".keys") && item.innerText.includes("edited")
        ? item.querySelector(".text").innerText : null;
    }})()"""), timeout=10, what="the edited message without its keyboard", interval=0.05)
    assert edited == "Image it is"


def test_the_page_and_media_are_served_with_their_types(sim: TelegramSim) -> None:
    page = requests.get(f"{sim.url}/", timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "<script>" in page.text and not re.search(r"""(src|href)=["']?(https?:)?//""", page.text)
    sim.user_sends(USER, "hi")
    sent = bot_api(sim, "sendDocument", chat_id=USER,
                   files={"document": ("notes.txt", b"some notes", "text/plain")})
    photo = bot_api(sim, "sendPhoto", chat_id=USER, files={"photo": ("p.png", png(4, 4))})
    document = requests.get(f"{sim.url}/web/file/{sent['document']['file_id']}", timeout=5)
    assert (document.content, document.headers["Content-Type"]) == (b"some notes", "text/plain")
    image = requests.get(f"{sim.url}/web/file/{photo['photo'][-1]['file_id']}", timeout=5)
    assert image.headers["Content-Type"] == "image/png" and image.content == png(4, 4)
    assert requests.get(f"{sim.url}/web/file/nope", timeout=5).status_code == 404
    chats = requests.get(f"{sim.url}/__sim/chats", timeout=5).json()
    assert chats == {"chats": [{"id": USER, "type": "private", "first_name": "Test"}]}


@pytest.mark.parametrize(("route", "body", "reason"), [
    ("send", b"{not json", "JSON"),
    ("send", b"[1, 2]", "JSON objects"),
    ("send", b'{"text": "hi"}', "missing field 'user_id'"),
    ("send", b'{"user_id": 1}', "missing field 'text'"),
    ("send", b'{"user_id": "x", "text": "hi"}', "'user_id' must be an integer"),
    ("send", b'{"user_id": -5, "text": "hi"}', "positive"),
    ("send", b'{"user_id": 1, "text": 5}', "'text' must be a string"),
    ("send_photo", b'{"user_id": 1}', "missing field 'data_base64'"),
    ("send_photo", b'{"user_id": 1, "data_base64": "%%%"}', "not base64"),
    ("send_photo", b'{"user_id": 1, "data_base64": "aGVsbG8="}', "PNG, JPEG"),
    ("press", b'{"user_id": 1, "button_text": "Go", "message_id": "two"}', "'message_id'"),
    ("slow", b'{"method": "getMe", "seconds": "forever"}', "'seconds'"),
    ("wait_for_call", b'{"method": "getMe", "timeout": 1e999}', "'timeout'"),
])
def test_control_routes_answer_bad_input_with_400_and_a_reason(
        sim: TelegramSim, route: str, body: bytes, reason: str) -> None:
    response = requests.post(f"{sim.url}/__sim/{route}", data=body,
                             headers={"Content-Type": "application/json"}, timeout=5)
    assert response.status_code == 400, response.text
    assert reason in response.json()["error"]
    assert sim.chat(1) == []


def test_chat_ids_in_the_path_are_validated(sim: TelegramSim) -> None:
    answer = requests.get(f"{sim.url}/__sim/chats/abc", timeout=5)
    assert answer.status_code == 400 and "'id' must be an integer" in answer.json()["error"]
