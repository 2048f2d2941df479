"""The Telegram Bot API simulator, driven over real HTTP with requests and with PTB's own Bot.

Each test names one behaviour of the simulator that the bot's tests rely on: wire decoding,
validation errors, long polling, chat views after edits, button presses, media, webhooks,
flood limits and fault injection. No test sleeps; waiting is on the simulator's conditions.
"""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
import html
import json
import struct
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputMediaDocument, InputMediaPhoto, Update
from telegram.error import BadRequest, Conflict, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.ext import ApplicationBuilder, CallbackQueryHandler, CommandHandler, ContextTypes
from telegram.request import HTTPXRequest

from sim.telegram import TelegramSim
from sim.telegram_spec import Spec, format_text

USER = 1001
GROUP = -1002003004005
KEYBOARD = {"inline_keyboard": [[{"text": "🎨 Image", "callback_data": "kind:image"},
                                 {"text": "🎬 Video", "callback_data": "kind:video"}],
                                [{"text": "Docs", "url": "https://example.org/docs"}]]}


# ---------------------------------------------------------------- helpers and fixtures

def png(width: int, height: int) -> bytes:
    """A real, tiny PNG of the given size (so the simulator can read its dimensions)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\x10\x20\x30" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


@pytest.fixture
def sim() -> Iterator[TelegramSim]:
    with TelegramSim() as running:
        yield running


def post_json(sim: TelegramSim, method: str, **params: Any) -> requests.Response:
    return requests.post(f"{sim.url}/bot{sim.token}/{method}", json=params, timeout=10)


def post_form(sim: TelegramSim, method: str, files: dict[str, Any] | None = None,
              **params: Any) -> requests.Response:
    """Encode like PTB 22: strings as they are, everything else JSON-encoded."""
    data = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
    return requests.post(f"{sim.url}/bot{sim.token}/{method}", data=data, files=files, timeout=10)


def ok(response: requests.Response) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True
    return body["result"]


def failure(response: requests.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["ok"] is False and body["error_code"] == status
    return str(body["description"])


def bot_for(sim: TelegramSim, read_timeout: float = 5.0) -> Bot:
    return Bot(sim.token, base_url=f"{sim.url}/bot", base_file_url=f"{sim.url}/file/bot",
               request=HTTPXRequest(read_timeout=read_timeout))


@dataclass
class LocalWeb:
    """A tiny HTTP server on 127.0.0.1: serves scripted GETs, records POSTs (a webhook)."""

    server: ThreadingHTTPServer
    routes: dict[str, tuple[int, bytes, str]] = field(default_factory=dict)
    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    post_statuses: list[int] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def serve(self, path: str, body: bytes, content_type: str = "image/png", status: int = 200) -> str:
        self.routes[path] = (status, body, content_type)
        return self.url(path)

    def wait_for_posts(self, count: int, timeout: float = 5.0) -> list[tuple[dict[str, str], bytes]]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.posts) >= count, timeout), \
                f"timed out waiting for {count} webhook POSTs; got {len(self.posts)}"
            return list(self.posts)


class _WebHandler(BaseHTTPRequestHandler):
    server: Any

    def do_GET(self) -> None:
        status, body, content_type = self.server.web.routes.get(self.path, (404, b"no", "text/plain"))
        self._answer(status, body, content_type)

    def do_POST(self) -> None:
        web: LocalWeb = self.server.web
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with web.changed:
            web.posts.append((dict(self.headers.items()), body))
            status = web.post_statuses.pop(0) if web.post_statuses else 200
            web.changed.notify_all()
        self._answer(status, b"{}", "application/json")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
        pass


@pytest.fixture
def web() -> Iterator[LocalWeb]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _WebHandler)
    local = LocalWeb(server)
    server.web = local  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield local
    server.shutdown()
    server.server_close()
    thread.join()


class FakeClock:
    """Monotonic time the test moves by hand, so flood limits need no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def bot_message(sim: TelegramSim, text: str = "Pick a kind", **params: Any) -> dict[str, Any]:
    """A user has written, and the bot answered with a keyboard."""
    if not sim.chat(USER):
        sim.user_sends(USER, "/start")
    return ok(post_form(sim, "sendMessage", chat_id=USER, text=text, reply_markup=KEYBOARD, **params))


# ---------------------------------------------------------------- transport and validation

def test_get_me_returns_the_bot_user_with_id_from_the_token(sim: TelegramSim) -> None:
    me = ok(requests.get(f"{sim.url}/bot{sim.token}/getMe", timeout=5))
    assert me["id"] == 123456 and me["is_bot"] is True and me["username"] == "kiebot_sim_bot"


def test_wrong_token_gets_401_unauthorized(sim: TelegramSim) -> None:
    response = requests.post(f"{sim.url}/bot999:wrong/getMe", timeout=5)
    assert response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    assert response.status_code == 401


def test_unknown_method_gets_404_and_method_names_are_case_insensitive(sim: TelegramSim) -> None:
    assert failure(post_json(sim, "sendTelepathy"), 404) == "Not Found: method not found"
    assert ok(post_json(sim, "GETME"))["id"] == 123456
    assert [c.method for c in sim.calls()] == ["sendTelepathy", "getMe"]


def test_form_values_are_coerced_to_the_types_the_spec_declares(sim: TelegramSim) -> None:
    sim.user_sends(USER, "hi")
    message = ok(post_form(sim, "sendMessage", chat_id=str(USER), text="123",
                           disable_notification=True, reply_markup=KEYBOARD))
    params = sim.calls("sendMessage")[-1].params
    assert params["chat_id"] == USER and params["text"] == "123"
    assert params["disable_notification"] is True
    assert params["reply_markup"] == KEYBOARD
    assert message["chat"]["id"] == USER and message["reply_markup"] == KEYBOARD


def test_json_bodies_and_query_strings_are_accepted_too(sim: TelegramSim) -> None:
    sim.user_sends(USER, "hi")
    ok(post_json(sim, "sendMessage", chat_id=USER, text="json body"))
    ok(requests.get(f"{sim.url}/bot{sim.token}/sendMessage",
                    params={"chat_id": USER, "text": "query"}, timeout=5))
    assert [m.text for m in sim.chat(USER)] == ["hi", "json body", "query"]


def test_unknown_parameters_are_ignored_like_telegram_does(sim: TelegramSim) -> None:
    sim.user_sends(USER, "hi")
    ok(post_json(sim, "sendMessage", chat_id=USER, text="x", reply_to_message_idd=5))
    assert "reply_to_message_idd" not in sim.calls("sendMessage")[0].params


@pytest.mark.parametrize(("params", "reason"), [
    ({"chat_id": USER}, "Bad Request: message text is empty"),
    ({"text": "hello"}, "Bad Request: chat_id is empty"),
    ({"chat_id": USER, "text": "   "}, "Bad Request: message text is empty"),
    ({"chat_id": USER, "text": "x", "disable_notification": "maybe"},
     'Bad Request: field "disable_notification" must be a Boolean'),
    ({"chat_id": USER, "text": "x", "reply_markup": "{not json"},
     "Bad Request: can't parse InlineKeyboardMarkup JSON object"),
])
def test_missing_or_mistyped_parameters_get_400_with_the_reason(
        sim: TelegramSim, params: dict[str, Any], reason: str) -> None:
    sim.user_sends(USER, "hi")
    assert failure(post_form(sim, "sendMessage", **params), 400) == reason


def test_mistyped_integer_is_rejected_naming_the_field(sim: TelegramSim) -> None:
    bot_message(sim)
    reason = failure(post_form(sim, "editMessageText", chat_id=USER, message_id="two", text="x"), 400)
    assert reason == 'Bad Request: field "message_id" must be an Integer'


def test_sending_to_a_chat_no_user_wrote_from_is_chat_not_found(sim: TelegramSim) -> None:
    assert failure(post_json(sim, "sendMessage", chat_id=4242, text="hi"), 400) == \
        "Bad Request: chat not found"


def test_text_over_4096_characters_is_message_too_long(sim: TelegramSim) -> None:
    sim.user_sends(USER, "hi")
    ok(post_json(sim, "sendMessage", chat_id=USER, text="a" * 4096))
    assert failure(post_json(sim, "sendMessage", chat_id=USER, text="a" * 4097), 400) == \
        "Bad Request: message is too long"


def test_callback_data_over_64_bytes_is_button_data_invalid(sim: TelegramSim) -> None:
    sim.user_sends(USER, "hi")
    too_long = {"inline_keyboard": [[{"text": "x", "callback_data": "é" * 33}]]}
    just_right = {"inline_keyboard": [[{"text": "x", "callback_data": "é" * 32}]]}
    ok(post_form(sim, "sendMessage", chat_id=USER, text="fits", reply_markup=just_right))
    assert failure(post_form(sim, "sendMessage", chat_id=USER, text="t", reply_markup=too_long),
                   400) == "Bad Request: BUTTON_DATA_INVALID"


def test_inline_button_without_an_action_is_rejected(sim: TelegramSim) -> None:
    sim.user_sends(USER, "hi")
    markup = {"inline_keyboard": [[{"text": "just text"}]]}
    assert "Text buttons are unallowed" in failure(
        post_form(sim, "sendMessage", chat_id=USER, text="t", reply_markup=markup), 400)


def test_caption_over_1024_characters_is_rejected(sim: TelegramSim) -> None:
    sim.user_sends(USER, "hi")
    response = post_form(sim, "sendPhoto", chat_id=USER, caption="c" * 1025,
                         files={"photo": ("a.png", png(10, 10), "image/png")})
    assert failure(response, 400) == "Bad Request: message caption is too long"


def test_html_parse_mode_shows_plain_text_and_returns_entities(sim: TelegramSim) -> None:
    sim.user_sends(USER, "hi")
    message = ok(post_form(sim, "sendMessage", chat_id=USER, parse_mode="HTML",
                           text="<b>Done</b> in 3 &lt; 5 s, <a href=\"https://x.test\">open</a>"))
    assert message["text"] == "Done in 3 < 5 s, open"
    assert message["entities"] == [{"type": "bold", "offset": 0, "length": 4},
                                   {"type": "text_link", "offset": 17, "length": 4,
                                    "url": "https://x.test"}]
    assert sim.chat(USER)[-1].text == "Done in 3 < 5 s, open"


@pytest.mark.parametrize(("text", "mode", "reason"), [
    ("3 < 5", "HTML", 'Unsupported start tag "" at byte offset 2'),
    ("<b>bold", "HTML", 'Can\'t find end tag corresponding to start tag "b"'),
    ("<div>x</div>", "HTML", 'Unsupported start tag "div" at byte offset 0'),
    ("Done.", "MarkdownV2", "Character '.' is reserved and must be escaped with the preceding '\\'"),
    ("*bold", "MarkdownV2", "Can't find end of Bold entity at byte offset 0"),
])
def test_malformed_markup_is_cant_parse_entities(sim: TelegramSim, text: str, mode: str,
                                                 reason: str) -> None:
    sim.user_sends(USER, "hi")
    assert failure(post_form(sim, "sendMessage", chat_id=USER, text=text, parse_mode=mode), 400) == \
        f"Bad Request: can't parse entities: {reason}"


def test_markdown_v2_entities_and_escapes(sim: TelegramSim) -> None:
    sim.user_sends(USER, "hi")
    message = ok(post_form(sim, "sendMessage", chat_id=USER, parse_mode="MarkdownV2",
                           text="*Job* `42` done\\! [link](https://x.test/a\\)b)"))
    assert message["text"] == "Job 42 done! link"
    assert [e["type"] for e in message["entities"]] == ["bold", "code", "text_link"]
    assert message["entities"][2]["url"] == "https://x.test/a)b"


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=300))
def test_escaped_html_always_shows_the_original_text(text: str) -> None:
    plain, entities = format_text(html.escape(text, quote=False), "HTML")
    assert plain == text.strip() and entities == []


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=50))
def test_bold_html_entity_covers_the_text_in_utf16_units(text: str) -> None:
    plain, entities = format_text(f"<b>{html.escape(text)}</b>", "HTML")
    if plain:
        assert entities == [{"type": "bold", "offset": 0,
                             "length": len(plain.encode("utf-16-le")) // 2}]


# ---------------------------------------------------------------- updates and long polling

def test_user_message_update_is_realistic_with_a_bot_command_entity(sim: TelegramSim) -> None:
    first = sim.user_sends(USER, "/start@kiebot_sim_bot now", language_code="de", first_name="Ana")
    second = sim.user_sends(USER, "a prompt")
    updates = ok(post_json(sim, "getUpdates"))
    assert [u["update_id"] for u in updates] == [first, second] and second == first + 1
    message = updates[0]["message"]
    assert message["from"] == {"id": USER, "is_bot": False, "first_name": "Ana", "language_code": "de"}
    assert message["chat"] == {"id": USER, "type": "private", "first_name": "Ana"}
    assert message["entities"] == [{"type": "bot_command", "offset": 0, "length": 21}]
    assert message["message_id"] == 1 and updates[1]["message"]["message_id"] == 2
    assert "entities" not in updates[1]["message"]


def test_get_updates_long_poll_returns_as_soon_as_an_update_arrives(sim: TelegramSim) -> None:
    with ThreadPoolExecutor(1) as pool:
        poll = pool.submit(post_json, sim, "getUpdates", timeout=30)
        sim.wait_for_polling()
        update_id = sim.user_sends(USER, "wake up")
        updates = ok(poll.result(timeout=5))
    assert [u["update_id"] for u in updates] == [update_id]


def test_get_updates_with_zero_timeout_returns_an_empty_list_at_once(sim: TelegramSim) -> None:
    assert ok(post_json(sim, "getUpdates", timeout=0)) == []


def test_offset_confirms_earlier_updates_and_limit_caps_the_batch(sim: TelegramSim) -> None:
    ids = [sim.user_sends(USER, f"m{i}") for i in range(3)]
    assert [u["update_id"] for u in ok(post_json(sim, "getUpdates", limit=2))] == ids[:2]
    assert [u["update_id"] for u in ok(post_json(sim, "getUpdates", offset=ids[1]))] == ids[1:]
    assert ok(post_json(sim, "getUpdates", offset=ids[2] + 1)) == []
    assert ok(post_json(sim, "getUpdates", offset=ids[0])) == []  # confirmed ones are gone


def test_second_overlapping_get_updates_gets_409_conflict(sim: TelegramSim) -> None:
    with ThreadPoolExecutor(1) as pool:
        older = pool.submit(post_json, sim, "getUpdates", timeout=30)
        sim.wait_for_polling()
        assert ok(post_json(sim, "getUpdates", timeout=0)) == []
        assert failure(older.result(timeout=5), 409) == (
            "Conflict: terminated by other getUpdates request; "
            "make sure that only one bot instance is running")


def test_webhook_makes_get_updates_conflict_until_it_is_deleted(sim: TelegramSim, web: LocalWeb) -> None:
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(post_json, sim, "getUpdates", timeout=30)
        sim.wait_for_polling()
        assert ok(post_json(sim, "setWebhook", url=web.url("/hook"))) is True
        assert "can't use getUpdates method while webhook is active" in failure(held.result(5), 409)
    assert ok(post_json(sim, "getWebhookInfo"))["url"] == web.url("/hook")
    assert ok(post_json(sim, "deleteWebhook")) is True
    assert ok(post_json(sim, "getUpdates")) == []
    assert ok(post_json(sim, "getWebhookInfo")) == {"url": "", "has_custom_certificate": False,
                                                    "pending_update_count": 0}


# ---------------------------------------------------------------- chat view, edits, buttons

def test_chat_view_shows_current_text_after_edits(sim: TelegramSim) -> None:
    sent = bot_message(sim, "Queued…")
    edited = ok(post_form(sim, "editMessageText", chat_id=USER, message_id=sent["message_id"],
                          text="Running 40%"))
    assert edited["edit_date"] >= sent["date"] and edited["message_id"] == sent["message_id"]
    view = sim.chat(USER)
    assert [(m.from_bot, m.text, m.edited) for m in view] == [
        (False, "/start", False), (True, "Running 40%", True)]


def test_editing_text_without_reply_markup_removes_the_keyboard(sim: TelegramSim) -> None:
    sent = bot_message(sim)
    assert sim.chat(USER)[-1].buttons[0] == [("🎨 Image", "kind:image"), ("🎬 Video", "kind:video")]
    ok(post_form(sim, "editMessageText", chat_id=USER, message_id=sent["message_id"], text="Chosen"))
    assert sim.chat(USER)[-1].buttons == []


def test_editing_with_identical_content_is_message_not_modified(sim: TelegramSim) -> None:
    sent = bot_message(sim, "<b>Same</b>", parse_mode="HTML")
    again = post_form(sim, "editMessageText", chat_id=USER, message_id=sent["message_id"],
                      text="<b>Same</b>", parse_mode="HTML", reply_markup=KEYBOARD)
    assert failure(again, 400) == (
        "Bad Request: message is not modified: specified new message content and reply markup "
        "are exactly the same as a current content and reply markup of the message")
    ok(post_form(sim, "editMessageText", chat_id=USER, message_id=sent["message_id"],
                 text="Same", reply_markup=KEYBOARD))  # entities differ: that is a change


def test_editing_a_missing_message_is_message_to_edit_not_found(sim: TelegramSim) -> None:
    bot_message(sim)
    assert failure(post_form(sim, "editMessageText", chat_id=USER, message_id=99, text="x"), 400) == \
        "Bad Request: message to edit not found"
    assert failure(post_form(sim, "editMessageText", chat_id=USER, message_id=1, text="x"), 400) == \
        "Bad Request: message can't be edited"


def test_user_presses_sends_the_button_data_of_the_newest_message_having_it(sim: TelegramSim) -> None:
    older = bot_message(sim, "first menu")
    newer = bot_message(sim, "second menu")
    ok(post_json(sim, "getUpdates", offset=sim.user_sends(USER, "x") + 1))
    update_id = sim.user_presses(USER, "Video")  # substring of "🎬 Video"
    query = ok(post_json(sim, "getUpdates"))[0]
    assert query["update_id"] == update_id
    callback = query["callback_query"]
    assert callback["data"] == "kind:video" and callback["from"]["id"] == USER
    assert callback["message"] == newer and isinstance(callback["id"], str)
    assert callback["chat_instance"]
    sim.user_presses(USER, "🎨 Image", message_id=older["message_id"])
    assert ok(post_json(sim, "getUpdates", offset=update_id + 1))[0]["callback_query"]["message"][
        "message_id"] == older["message_id"]


def test_pressing_a_missing_button_raises_lookup_error(sim: TelegramSim) -> None:
    bot_message(sim)
    with pytest.raises(LookupError, match="Upscale"):
        sim.user_presses(USER, "Upscale")
    with pytest.raises(LookupError):
        sim.user_presses(USER, "Docs")  # a URL button sends no callback


def test_answering_a_callback_query_twice_is_query_too_old(sim: TelegramSim) -> None:
    bot_message(sim)
    sim.user_presses(USER, "Image")
    query_id = ok(post_json(sim, "getUpdates"))[-1]["callback_query"]["id"]
    assert ok(post_json(sim, "answerCallbackQuery", callback_query_id=query_id, text="ok")) is True
    for unknown in (query_id, "12345"):
        assert failure(post_json(sim, "answerCallbackQuery", callback_query_id=unknown), 400) == (
            "Bad Request: query is too old and response timeout expired or query ID is invalid")


def test_edit_caption_and_reply_markup_then_delete(sim: TelegramSim) -> None:
    sim.user_sends(USER, "hi")
    photo = ok(post_form(sim, "sendPhoto", chat_id=USER, caption="v1", reply_markup=KEYBOARD,
                         files={"photo": ("a.png", png(20, 10), "image/png")}))
    mid = photo["message_id"]
    ok(post_form(sim, "editMessageCaption", chat_id=USER, message_id=mid, caption="v2",
                 reply_markup=KEYBOARD))
    assert (sim.chat(USER)[-1].caption, sim.chat(USER)[-1].edited) == ("v2", True)
    ok(post_form(sim, "editMessageReplyMarkup", chat_id=USER, message_id=mid))
    assert sim.chat(USER)[-1].buttons == [] and sim.chat(USER)[-1].caption == "v2"
    assert "not modified" in failure(
        post_form(sim, "editMessageReplyMarkup", chat_id=USER, message_id=mid), 400)
    assert ok(post_json(sim, "deleteMessage", chat_id=USER, message_id=mid)) is True
    assert [m.text for m in sim.chat(USER)] == ["hi"]
    assert failure(post_json(sim, "deleteMessage", chat_id=USER, message_id=mid), 400) == \
        "Bad Request: message to delete not found"


def test_message_ids_increase_per_chat_and_groups_have_their_own(sim: TelegramSim) -> None:
    sim.user_sends(USER, "private")
    sim.user_sends(USER, "in the group", chat_id=GROUP)
    private = ok(post_json(sim, "sendMessage", chat_id=USER, text="a"))
    group = ok(post_json(sim, "sendMessage", chat_id=GROUP, text="b"))
    assert (private["message_id"], group["message_id"]) == (2, 2)
    assert group["chat"]["type"] == "supergroup" and group["chat"]["title"]


# ---------------------------------------------------------------- media and files

def test_uploaded_photo_gets_sizes_from_its_bytes_and_its_file_id_can_be_resent(sim: TelegramSim) -> None:
    sim.user_sends(USER, "hi")
    sent = ok(post_form(sim, "sendPhoto", chat_id=USER, caption="<i>result</i>", parse_mode="HTML",
                        files={"photo": ("result.png", png(1024, 512), "image/png")}))
    sizes = sent["photo"]
    assert [(s["width"], s["height"]) for s in sizes] == [(320, 160), (1024, 512)]
    assert all(s["file_id"] and s["file_unique_id"] for s in sizes)
    assert sent["caption"] == "result" and sent["caption_entities"][0]["type"] == "italic"
    again = ok(post_form(sim, "sendPhoto", chat_id=USER, photo=sizes[-1]["file_id"]))
    assert again["photo"] == sizes
    view = sim.chat(USER)[-1]
    assert (view.media, view.file_id) == ("photo", sizes[-1]["file_id"])
    assert sim.file_bytes(view.file_id) == png(1024, 512)


@pytest.mark.parametrize(("data", "reason"), [
    (b"not an image", "Bad Request: IMAGE_PROCESS_FAILED"),
    (png(9000, 2000), "Bad Request: PHOTO_INVALID_DIMENSIONS"),
    (png(2100, 100), "Bad Request: PHOTO_INVALID_DIMENSIONS"),
])
def test_photo_uploads_telegram_cannot_process_are_rejected(sim: TelegramSim, data: bytes,
                                                            reason: str) -> None:
    sim.user_sends(USER, "hi")
    response = post_form(sim, "sendPhoto", chat_id=USER, files={"photo": ("x.png", data, "image/png")})
    assert failure(response, 400) == reason


def test_photo_by_url_is_fetched_by_the_simulator(sim: TelegramSim, web: LocalWeb) -> None:
    sim.user_sends(USER, "hi")
    url = web.serve("/result.png", png(640, 480))
    sent = ok(post_form(sim, "sendPhoto", chat_id=USER, photo=url))
    assert sent["photo"][-1]["width"] == 640
    assert sim.file_bytes(sent["photo"][-1]["file_id"]) == png(640, 480)
    assert ok(post_form(sim, "sendPhoto", chat_id=USER, photo=url))["photo"] == sent["photo"]


def test_unreachable_or_oversized_urls_fail_to_get_http_url_content(sim: TelegramSim,
                                                                  web: LocalWeb) -> None:
    sim.user_sends(USER, "hi")
    big = web.serve("/big.png", png(10, 10) + b"\0" * (5 * 1024 * 1024))
    for url in (web.url("/missing.png"), big, "https://example.org/outside.png"):
        assert failure(post_form(sim, "sendPhoto", chat_id=USER, photo=url), 400) == \
            "Bad Request: failed to get HTTP URL content"
    web.serve("/missing.png", png(10, 10))  # Telegram cached the failure; it keeps failing
    assert failure(post_form(sim, "sendPhoto", chat_id=USER, photo=web.url("/missing.png")), 400) == \
        "Bad Request: failed to get HTTP URL content"


def test_a_url_that_is_not_an_image_is_the_wrong_web_page_content(sim: TelegramSim,
                                                                  web: LocalWeb) -> None:
    sim.user_sends(USER, "hi")
    url = web.serve("/page", b"<html></html>", "text/html")
    assert failure(post_form(sim, "sendPhoto", chat_id=USER, photo=url), 400) == \
        "Bad Request: wrong type of the web page content"
    assert failure(post_form(sim, "sendDocument", chat_id=USER, document=url), 400) == \
        "Bad Request: wrong type of the web page content"


def test_video_and_pdf_document_by_url_are_fetched(sim: TelegramSim, web: LocalWeb) -> None:
    sim.user_sends(USER, "hi")
    clip = web.serve("/clip.mp4", b"\0\0\0\x18ftypmp42" + b"\0" * 100, "video/mp4")
    video = ok(post_form(sim, "sendVideo", chat_id=USER, video=clip, width=1280, height=720,
                         duration=5, supports_streaming=True))
    assert (video["video"]["width"], video["video"]["duration"]) == (1280, 5)
    assert video["video"]["file_name"] == "clip.mp4" and video["video"]["mime_type"] == "video/mp4"
    pdf = web.serve("/report.pdf", b"%PDF-1.7 report", "application/pdf")
    document = ok(post_form(sim, "sendDocument", chat_id=USER, document=pdf))
    assert document["document"]["mime_type"] == "application/pdf"
    assert failure(post_form(sim, "sendPhoto", chat_id=USER, photo=video["video"]["file_id"]), 400) \
        == "Bad Request: can't use file of type Video as Photo"


def test_unknown_file_id_is_wrong_file_identifier(sim: TelegramSim) -> None:
    sim.user_sends(USER, "hi")
    assert failure(post_form(sim, "sendPhoto", chat_id=USER, photo="AgACnope"), 400) == \
        "Bad Request: wrong file identifier/HTTP URL specified"


@pytest.mark.parametrize(("method", "kind", "filename", "mime"), [
    ("sendDocument", "document", "original.png", "image/png"),
    ("sendVideo", "video", "clip.mp4", "video/mp4"),
    ("sendAudio", "audio", "song.mp3", "audio/mpeg"),
    ("sendAnimation", "animation", "loop.gif", "image/gif"),
])
def test_other_media_uploads_keep_their_bytes_name_and_type(sim: TelegramSim, method: str, kind: str,
                                                            filename: str, mime: str) -> None:
    sim.user_sends(USER, "hi")
    data = b"\r\n--boundary-lookalike\r\n" + bytes(range(256)) * 40
    sent = ok(post_form(sim, method, chat_id=USER, caption="here",
                        files={kind: (filename, data, mime)}))
    assert sent[kind]["file_name"] == filename and sent[kind]["mime_type"] == mime
    assert sent[kind]["file_size"] == len(data)
    view = sim.chat(USER)[-1]
    assert (view.media, view.caption) == (kind, "here")
    assert sim.file_bytes(view.file_id) == data


def test_upload_over_50_mb_is_413_request_entity_too_large(sim: TelegramSim) -> None:
    sim.user_sends(USER, "hi")
    huge = b"\0" * (50 * 1024 * 1024 + 1)
    response = post_form(sim, "sendDocument", chat_id=USER, files={"document": ("big.bin", huge)})
    assert failure(response, 413) == "Request Entity Too Large"
    assert [m.text for m in sim.chat(USER)] == ["hi"]


def test_media_group_takes_2_to_10_items_sharing_one_group_id(sim: TelegramSim) -> None:
    sim.user_sends(USER, "hi")
    media = [{"type": "photo", "media": "attach://a", "caption": "first"},
             {"type": "photo", "media": "attach://b"}]
    files = {"a": ("a.png", png(30, 30), "image/png"), "b": ("b.png", png(40, 40), "image/png")}
    messages = ok(post_form(sim, "sendMediaGroup", chat_id=USER, media=media, files=files))
    assert len({m["media_group_id"] for m in messages}) == 1
    assert [m["message_id"] for m in messages] == [2, 3] and messages[0]["caption"] == "first"
    one = [{"type": "photo", "media": messages[0]["photo"][-1]["file_id"]}]
    assert failure(post_form(sim, "sendMediaGroup", chat_id=USER, media=one), 400) == \
        "Bad Request: media group must contain 2-10 items"
    eleven = one * 11
    assert failure(post_form(sim, "sendMediaGroup", chat_id=USER, media=eleven), 400) == \
        "Bad Request: Too much messages to send as an album"


def test_get_file_returns_a_path_that_downloads_the_bytes(sim: TelegramSim) -> None:
    sim.user_sends_photo(USER, png(50, 60), caption="edit this")
    photo = ok(post_json(sim, "getUpdates"))[0]["message"]["photo"][-1]
    info = ok(post_json(sim, "getFile", file_id=photo["file_id"]))
    assert info["file_size"] == len(png(50, 60))
    download = requests.get(f"{sim.url}/file/bot{sim.token}/{info['file_path']}", timeout=5)
    assert download.status_code == 200 and download.content == png(50, 60)
    assert requests.get(f"{sim.url}/file/bot{sim.token}/nope", timeout=5).status_code == 404
    assert failure(post_json(sim, "getFile", file_id="nope"), 400) == "Bad Request: invalid file_id"


def test_chat_action_and_commands_are_validated(sim: TelegramSim) -> None:
    sim.user_sends(USER, "hi")
    assert ok(post_json(sim, "sendChatAction", chat_id=USER, action="upload_photo")) is True
    assert failure(post_json(sim, "sendChatAction", chat_id=USER, action="dancing"), 400) == \
        "Bad Request: wrong parameter action in request"
    commands = [{"command": "start", "description": "Start"}, {"command": "balance",
                                                               "description": "Credits"}]
    assert ok(post_form(sim, "setMyCommands", commands=commands)) is True
    assert ok(post_json(sim, "getMyCommands")) == commands
    assert failure(post_form(sim, "setMyCommands", commands=[{"command": "Bad Cmd",
                                                              "description": "x"}]), 400) == \
        "Bad Request: BOT_COMMAND_INVALID"


# ---------------------------------------------------------------- webhooks

def test_webhook_posts_updates_with_the_secret_and_retries_until_2xx(sim: TelegramSim,
                                                                   web: LocalWeb) -> None:
    web.post_statuses.extend([500, 502])
    ok(post_json(sim, "setWebhook", url=web.url("/hook"), secret_token="s3cret_token-1"))
    update_id = sim.user_sends(USER, "hello hook")
    posts = web.wait_for_posts(3)
    assert all(h["X-Telegram-Bot-Api-Secret-Token"] == "s3cret_token-1" for h, _ in posts)
    assert {json.loads(body)["update_id"] for _, body in posts} == {update_id}
    assert json.loads(posts[0][1])["message"]["text"] == "hello hook"
    deliveries = sim.wait_for_deliveries(3)
    assert [(d.attempt, d.status) for d in deliveries] == [(1, 500), (2, 502), (3, 200)]
    info = ok(post_json(sim, "getWebhookInfo"))
    assert info["pending_update_count"] == 0 and "502" in info["last_error_message"]


def test_webhook_gives_up_after_the_last_attempt_and_moves_on(sim: TelegramSim, web: LocalWeb) -> None:
    sim.WEBHOOK_MAX_ATTEMPTS = 2
    web.post_statuses.extend([500, 500])
    ok(post_json(sim, "setWebhook", url=web.url("/hook")))
    first, second = sim.user_sends(USER, "lost"), sim.user_sends(USER, "kept")
    posts = web.wait_for_posts(3)
    assert [json.loads(b)["update_id"] for _, b in posts] == [first, first, second]
    assert "X-Telegram-Bot-Api-Secret-Token" not in posts[0][0]


def test_webhook_url_and_secret_are_validated(sim: TelegramSim) -> None:
    assert "HTTPS URL must be provided" in failure(post_json(sim, "setWebhook", url="ftp://x"), 400)
    assert failure(post_json(sim, "setWebhook", url="https://x.test/h", secret_token="no spaces"),
                   400) == "Bad Request: secret token contains unallowed characters"


# ---------------------------------------------------------------- limits and faults

def test_private_chat_allows_a_small_burst_then_429_with_retry_after() -> None:
    clock = FakeClock()
    with TelegramSim(enforce_limits=True, clock=clock) as sim:
        sim.user_sends(USER, "hi")
        for n in range(3):
            ok(post_json(sim, "sendMessage", chat_id=USER, text=f"burst {n}"))
        response = post_json(sim, "sendMessage", chat_id=USER, text="one too many")
        assert failure(response, 429) == "Too Many Requests: retry after 1"
        assert response.json()["parameters"] == {"retry_after": 1}
        ok(post_json(sim, "sendChatAction", chat_id=USER, action="typing"))
        ok(post_json(sim, "getMe"))
        clock.now += 1.0
        ok(post_json(sim, "sendMessage", chat_id=USER, text="after waiting"))
        assert [m.text for m in sim.chat(USER)][-1] == "after waiting"


def test_group_chat_allows_20_messages_per_minute() -> None:
    clock = FakeClock()
    with TelegramSim(enforce_limits=True, clock=clock) as sim:
        sim.user_sends(USER, "hi all", chat_id=GROUP)
        for n in range(20):
            clock.now += 0.05  # stay under the bot-wide 30/s
            ok(post_json(sim, "sendMessage", chat_id=GROUP, text=f"m{n}"))
        response = post_json(sim, "sendMessage", chat_id=GROUP, text="m20")
        assert response.status_code == 429 and response.json()["parameters"]["retry_after"] >= 2


def test_bot_wide_limit_is_30_messages_per_second_across_chats() -> None:
    clock = FakeClock()
    with TelegramSim(enforce_limits=True, clock=clock) as sim:
        for user in range(1, 32):
            sim.user_sends(user, "hi")
        for user in range(1, 31):
            ok(post_json(sim, "sendMessage", chat_id=user, text="news"))
        assert failure(post_json(sim, "sendMessage", chat_id=31, text="news"), 429).startswith(
            "Too Many Requests")


def test_answering_callbacks_and_polling_do_not_count_toward_limits() -> None:
    with TelegramSim(enforce_limits=True, clock=FakeClock()) as sim:
        bot_message(sim)
        for _ in range(5):
            sim.user_presses(USER, "Image")
        for update in ok(post_json(sim, "getUpdates", offset=2)):
            ok(post_json(sim, "answerCallbackQuery", callback_query_id=update["callback_query"]["id"]))
        assert len(sim.calls("answerCallbackQuery")) == 5


def test_blocked_user_gets_403_until_they_write_again(sim: TelegramSim) -> None:
    sim.user_sends(USER, "hi")
    sim.block_bot(USER)
    assert failure(post_json(sim, "sendMessage", chat_id=USER, text="x"), 403) == \
        "Forbidden: bot was blocked by the user"
    sim.user_sends(USER, "/start")
    ok(post_json(sim, "sendMessage", chat_id=USER, text="welcome back"))


def test_fail_next_answers_scripted_errors_without_performing_the_call(sim: TelegramSim) -> None:
    sim.user_sends(USER, "hi")
    sim.fail_next("sendMessage", 1, status=429, retry_after=7)
    sim.fail_next("sendMessage", 1, status=502)
    response = post_json(sim, "sendMessage", chat_id=USER, text="a")
    assert failure(response, 429) == "Too Many Requests: retry after 7"
    assert response.json()["parameters"] == {"retry_after": 7}
    assert failure(post_json(sim, "sendMessage", chat_id=USER, text="b"), 502) == "Bad Gateway"
    ok(post_json(sim, "sendMessage", chat_id=USER, text="c"))
    assert [m.text for m in sim.chat(USER)] == ["hi", "c"]
    assert [c.status for c in sim.calls("sendMessage")] == [429, 502, 200]


def test_dropped_response_still_delivers_the_message(sim: TelegramSim) -> None:
    sim.user_sends(USER, "hi")
    sim.drop_next_response("sendMessage")
    with pytest.raises(requests.ConnectionError):
        post_json(sim, "sendMessage", chat_id=USER, text="did it arrive?")
    assert sim.chat(USER)[-1].text == "did it arrive?"
    assert sim.calls("sendMessage")[0].status == 200
    ok(post_json(sim, "sendMessage", chat_id=USER, text="next one is answered"))


def test_calls_transcript_records_params_status_and_response_in_order(sim: TelegramSim) -> None:
    sim.user_sends(USER, "hi")
    ok(post_form(sim, "sendMessage", chat_id=USER, text="one"))
    post_form(sim, "sendMessage", chat_id=USER)
    first, second = sim.calls("sendmessage")
    assert first.params == {"chat_id": USER, "text": "one"} and first.status == 200
    assert first.response["result"]["text"] == "one"
    assert second.status == 400 and second.at >= first.at
    assert sim.wait_for_call("sendMessage", 2, predicate=lambda c: c.status in (200, 400)) == \
        [first, second]


def test_wait_for_call_fails_naming_what_it_waited_for(sim: TelegramSim) -> None:
    with pytest.raises(AssertionError, match=r"waiting for 2 sendPhoto call\(s\); saw 0"):
        sim.wait_for_call("sendPhoto", 2, timeout=0.05)
    with pytest.raises(AssertionError, match="chat 5 to match"):
        sim.wait_for_chat(5, lambda chat: bool(chat), timeout=0.05)


def test_reset_forgets_everything_but_update_ids_keep_increasing(sim: TelegramSim) -> None:
    first = sim.user_sends(USER, "hi")
    ok(post_json(sim, "sendMessage", chat_id=USER, text="x"))
    sim.reset()
    assert sim.chat(USER) == [] and sim.calls() == []
    assert failure(post_json(sim, "sendMessage", chat_id=USER, text="x"), 400) == \
        "Bad Request: chat not found"
    assert sim.user_sends(USER, "again") == first + 1


def test_same_seed_gives_the_same_file_ids_and_query_ids() -> None:
    def run(seed: int) -> tuple[str, str]:
        with TelegramSim(seed=seed) as sim:
            sim.user_sends(USER, "hi")
            sent = ok(post_form(sim, "sendPhoto", chat_id=USER, reply_markup=KEYBOARD,
                                files={"photo": ("a.png", png(10, 10), "image/png")}))
            sim.user_presses(USER, "Image")
            query = ok(post_json(sim, "getUpdates"))[-1]["callback_query"]["id"]
            return sent["photo"][-1]["file_id"], query
    assert run(3) == run(3) != run(4)


def test_control_api_drives_the_simulator_from_another_process(sim: TelegramSim) -> None:
    control = f"{sim.url}/__sim"
    update_id = requests.post(f"{control}/send", json={"user_id": USER, "text": "/start"},
                              timeout=5).json()["update_id"]
    photo = base64.b64encode(png(8, 8)).decode()
    requests.post(f"{control}/send_photo", json={"user_id": USER, "data_base64": photo}, timeout=5)
    ok(post_form(sim, "sendMessage", chat_id=USER, text="menu", reply_markup=KEYBOARD))
    pressed = requests.post(f"{control}/press", json={"user_id": USER, "button_text": "Video"},
                            timeout=5).json()["update_id"]
    assert pressed == update_id + 2
    missing = requests.post(f"{control}/press", json={"user_id": USER, "button_text": "Nope"},
                            timeout=5)
    assert missing.status_code == 404 and "Nope" in missing.json()["error"]
    chat = requests.get(f"{control}/chats/{USER}", timeout=5).json()["messages"]
    assert [m["text"] for m in chat] == ["/start", None, "menu"] and chat[1]["media"] == "photo"
    assert chat[2]["buttons"][0][1] == ["🎬 Video", "kind:video"]
    calls = requests.get(f"{control}/calls", params={"method": "sendMessage"}, timeout=5).json()
    assert [c["status"] for c in calls["calls"]] == [200]
    waited = requests.post(f"{control}/wait_for_call", json={"method": "sendPhoto",
                                                             "timeout": 0.05}, timeout=5)
    assert waited.status_code == 408
    requests.post(f"{control}/fail_next", json={"method": "getMe", "status": 500}, timeout=5)
    assert failure(post_json(sim, "getMe"), 500) == "Internal Server Error"
    assert requests.post(f"{control}/reset", json={}, timeout=5).status_code == 200
    assert requests.get(f"{control}/chats/{USER}", timeout=5).json() == {"messages": []}


def test_replies_echo_the_original_message(sim: TelegramSim) -> None:
    sim.user_sends(USER, "make a cat")
    reply = ok(post_form(sim, "sendMessage", chat_id=USER, text="on it",
                         reply_parameters={"message_id": 1}))
    assert reply["reply_to_message"]["text"] == "make a cat"
    assert failure(post_form(sim, "sendMessage", chat_id=USER, text="x",
                             reply_parameters={"message_id": 77}), 400) == \
        "Bad Request: message to be replied not found"


def test_returned_messages_and_updates_fit_the_spec_types(sim: TelegramSim) -> None:
    spec = Spec()
    sim.user_sends_photo(USER, png(400, 300), caption="source")
    sent = [bot_message(sim),
            ok(post_form(sim, "sendPhoto", chat_id=USER, files={"photo": ("a.png", png(5, 5))})),
            ok(post_form(sim, "sendVideo", chat_id=USER, files={"video": ("v.mp4", b"mp4")}))]
    sim.user_presses(USER, "Image")
    for message in sent:
        spec.check_object("Message", message)
    for update in ok(post_json(sim, "getUpdates")):
        spec.check_object("Update", update)
    spec.check_object("User", ok(post_json(sim, "getMe")))
    spec.check_object("WebhookInfo", ok(post_json(sim, "getWebhookInfo")))


# ---------------------------------------------------------------- python-telegram-bot, unmodified

def test_ptb_bot_drives_the_simulator_end_to_end(sim: TelegramSim, web: LocalWeb) -> None:
    url = web.serve("/kie/result.png", png(800, 600))

    async def scenario() -> None:
        async with bot_for(sim) as bot:
            assert (await bot.get_me()).username == "kiebot_sim_bot"
            sim.user_sends(USER, "/start")
            updates = await bot.get_updates(timeout=1)
            assert updates[0].message.text == "/start" and updates[0].message.chat.id == USER
            menu = await bot.send_message(USER, "<b>Pick</b>", parse_mode="HTML",
                                          reply_markup=InlineKeyboardMarkup(
                                              [[InlineKeyboardButton("Go", callback_data="go")]]))
            assert menu.text == "Pick" and menu.reply_markup.inline_keyboard[0][0].callback_data == "go"
            uploaded = await bot.send_photo(USER, png(64, 32), caption="upload")
            assert (uploaded.photo[-1].width, uploaded.photo[-1].height) == (64, 32)
            by_url = await bot.send_photo(USER, url, caption="by url")
            assert by_url.photo[-1].width == 800
            sim.user_presses(USER, "Go")
            polled = await bot.get_updates(offset=updates[-1].update_id + 1, timeout=5)
            query = polled[0].callback_query
            assert query.data == "go" and query.message.message_id == menu.message_id
            assert await query.answer("working") is True
            edited = await bot.edit_message_text("Chosen: go", chat_id=USER,
                                                 message_id=menu.message_id)
            assert edited.edit_date is not None
            file = await bot.get_file(by_url.photo[-1].file_id)
            assert bytes(await file.download_as_bytearray()) == png(800, 600)
            album = await bot.send_media_group(USER, [InputMediaPhoto(png(9, 9)),
                                                      InputMediaPhoto(uploaded.photo[-1].file_id)])
            assert len({m.media_group_id for m in album}) == 1
            docs = await bot.send_media_group(USER, [InputMediaDocument(b"%PDF-1", filename="a.pdf"),
                                                     InputMediaDocument(b"%PDF-2", filename="b.pdf")])
            assert [d.document.file_name for d in docs] == ["a.pdf", "b.pdf"]

    asyncio.run(scenario())
    view = sim.chat(USER)
    assert [(m.text or m.caption, m.edited) for m in view[:4]] == [
        ("/start", False), ("Chosen: go", True), ("upload", False), ("by url", False)]
    assert sim.calls("answerCallbackQuery")[0].params["text"] == "working"


def test_ptb_maps_simulated_failures_to_its_exceptions(sim: TelegramSim,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # PTB 22 warns on every RetryAfter it builds unless timedeltas are opted into; with
    # filterwarnings=error that warning would replace the RetryAfter itself.
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    seen = sim.user_sends(USER, "hi")

    async def scenario() -> None:
        async with bot_for(sim, read_timeout=0.3) as bot:
            with pytest.raises(BadRequest, match="Chat not found"):
                await bot.send_message(4242, "x")
            sim.fail_next("sendMessage", status=429, retry_after=3)
            with pytest.raises(RetryAfter) as flood:
                await bot.send_message(USER, "x")
            assert flood.value.retry_after == dt.timedelta(seconds=3)
            sim.block_bot(USER)
            with pytest.raises(Forbidden, match="blocked by the user"):
                await bot.send_message(USER, "x")
            sim.unblock_bot(USER)
            sim.drop_next_response("sendMessage")
            with pytest.raises(NetworkError, match="disconnected"):
                await bot.send_message(USER, "sent, but no answer")
            sim.slow("sendMessage", 0.6)
            with pytest.raises(TimedOut):
                await bot.send_message(USER, "slow but delivered")
            sim.slow("sendMessage", 0)
            with ThreadPoolExecutor(1) as pool:
                held = pool.submit(post_json, sim, "getUpdates", offset=seen + 1, timeout=30)
                sim.wait_for_polling()
                await bot.get_updates(timeout=0)
                assert held.result(5).status_code == 409
            sim.fail_next("getUpdates", status=409, description="Conflict: terminated by other "
                          "getUpdates request; make sure that only one bot instance is running")
            with pytest.raises(Conflict):
                await bot.get_updates(timeout=0)

    asyncio.run(scenario())
    sim.wait_for_chat(USER, lambda chat: chat[-1].text == "slow but delivered")
    assert [m.text for m in sim.chat(USER)] == ["hi", "sent, but no answer", "slow but delivered"]


def test_ptb_application_polls_and_answers_a_command_and_a_button(sim: TelegramSim) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        await update.message.reply_text("Choose:", reply_markup=InlineKeyboardMarkup(
            [[InlineKeyboardButton("Image", callback_data="kind:image")]]))

    async def choose(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer()
        await query.edit_message_text(f"You chose {query.data}")

    async def scenario() -> None:
        app = (ApplicationBuilder().token(sim.token).base_url(f"{sim.url}/bot")
               .base_file_url(f"{sim.url}/file/bot").build())
        app.add_handler(CommandHandler("start", start))
        app.add_handler(CallbackQueryHandler(choose))
        async with app:
            await app.start()
            assert app.updater is not None
            await app.updater.start_polling(timeout=1)
            sim.user_sends(USER, "/start")
            await asyncio.to_thread(sim.wait_for_chat, USER, lambda chat: len(chat) == 2)
            sim.user_presses(USER, "Image")
            await asyncio.to_thread(sim.wait_for_call, "editMessageText")
            await app.updater.stop()
            await app.stop()

    asyncio.run(scenario())
    assert [(m.text, m.edited) for m in sim.chat(USER)] == [
        ("/start", False), ("You chose kind:image", True)]
    assert [c.status for c in sim.calls("answerCallbackQuery")] == [200]


@pytest.mark.parametrize("mode", ["HTML", "MarkdownV2"])
def test_ptb_text_helpers_escape_markup_the_simulator_accepts(sim: TelegramSim, mode: str) -> None:
    from telegram.helpers import escape_markdown

    sim.user_sends(USER, "hi")
    raw = "Cost: 1.5 credits (x2) <fast> & *cheap* [beta] #1 _v2_ ~ok~ |a| {b} !"
    text = html.escape(raw) if mode == "HTML" else escape_markdown(raw, version=2)

    async def scenario() -> str:
        async with bot_for(sim) as bot:
            return (await bot.send_message(USER, text, parse_mode=mode)).text or ""

    assert asyncio.run(scenario()) == raw

