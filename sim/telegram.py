"""Telegram Bot API simulator: a real HTTP server on 127.0.0.1 that python-telegram-bot uses unmodified.

Owns: TelegramSim's lifecycle and test API, the Bot API methods it implements, the request
pipeline and the call transcript. Routes: telegram_http; update feed: telegram_updates; faults and
flood limits: telegram_faults; users and chats: telegram_chats; wire rules: telegram_spec;
Telegram Stars (invoices, pre-checkout, charges, refunds): telegram_payments.
It fetches only URLs the bot hands it, and only on loopback unless `allow_remote_urls` is set.
"""
from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sim.telegram_chats import (
    MB,
    ChatMessage,
    FileStore,
    World,
    caption_content,
    image_size,
    markup_content,
    text_content,
)
from sim.telegram_faults import Failure, Faults, FloodLimiter, counts_for_flood
from sim.telegram_http import SimServer, answer_control
from sim.telegram_payments import (
    PAYMENT_METHODS,
    PRE_CHECKOUT_TIMEOUT_S,
    PaymentAttempt,
    PaymentOutcome,
    StarPayment,
    StarPayments,
)
from sim.telegram_spec import ApiError, Spec, Upload, bad_request
from sim.telegram_updates import UpdateFeed, WebhookDelivery

__all__ = ["Call", "CallbackAnswer", "ChatMessage", "PaymentAttempt", "PaymentOutcome", "StarPayment",
           "TelegramSim", "WebhookDelivery"]

GET_FILE_LIMIT = 20 * MB
CHAT_ACTIONS = frozenset({"typing", "upload_photo", "record_video", "upload_video", "record_voice",
                          "upload_voice", "upload_document", "choose_sticker", "find_location",
                          "record_video_note", "upload_video_note"})


@dataclass
class Call:
    """One Bot API request as the simulator saw and answered it."""

    method: str
    params: dict[str, Any]
    status: int
    response: dict[str, Any]
    at: float


@dataclass(frozen=True)
class CallbackAnswer:
    """How the bot answered a button press: a toast (`text`), an alert the user must dismiss
    (`show_alert`), or nothing to show (`text` None), as Telegram's client presents it."""

    text: str | None
    show_alert: bool


class TelegramSim:
    """A stateful fake of api.telegram.org for one bot, plus the users who talk to it."""

    WEBHOOK_MAX_ATTEMPTS = 5
    WEBHOOK_BACKOFF_S = 0.05  # doubles per failed attempt

    def __init__(self, token: str = "123456:TEST-sim-token", host: str = "127.0.0.1", port: int = 0,
                 seed: int = 0, enforce_limits: bool = False, bot_username: str = "kiebot_sim_bot",
                 *, clock: Callable[[], float] = time.monotonic,
                 pre_checkout_timeout_s: float = PRE_CHECKOUT_TIMEOUT_S) -> None:
        if not re.fullmatch(r"\d+:[\w-]+", token):
            raise ValueError("token must look like '<bot id>:<secret>'")
        self.set_pre_checkout_timeout(pre_checkout_timeout_s)
        self.token: str = token
        self.host, self.port = host, port
        self.seed, self.enforce_limits, self.bot_username = seed, enforce_limits, bot_username
        self.allow_remote_urls = False
        self._clock = clock
        self._spec = Spec()
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._stop_event = threading.Event()
        self._feed = UpdateFeed(self._changed, self._stop_event, clock,
                                lambda: (self.WEBHOOK_MAX_ATTEMPTS, self.WEBHOOK_BACKOFF_S))
        self._server: SimServer | None = None
        self._threads: list[threading.Thread] = []
        self._in_flight = 0
        self._handlers: dict[str, Callable[[dict[str, Any], dict[str, Upload]], Any]] = {
            "getMe": self._get_me, "getUpdates": self._feed.get_updates,
            "setWebhook": self._feed.set_webhook, "deleteWebhook": self._feed.delete_webhook,
            "getWebhookInfo": self._feed.get_webhook_info, "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageCaption": self._edit_message_caption,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message, "answerCallbackQuery": self._answer_callback_query,
            "sendChatAction": self._send_chat_action, "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands, "deleteMyCommands": self._delete_my_commands,
            "sendPhoto": self._sender("photo"), "sendVideo": self._sender("video"),
            "sendAudio": self._sender("audio"), "sendDocument": self._sender("document"),
            "sendAnimation": self._sender("animation"), "sendMediaGroup": self._send_media_group,
            "getFile": self._get_file,
            **{method: self._paying(name) for method, name in PAYMENT_METHODS.items()},
        }
        self._reset_state()

    def _reset_state(self) -> None:
        """Everything reset() forgets; update_ids and the poll generation survive it."""
        bot_id = int(self.token.split(":", 1)[0])
        self.bot_user: dict[str, Any] = {"id": bot_id, "is_bot": True, "first_name": "Kiebot Sim",
                         "username": self.bot_username}
        # one generator per concern, so thread interleaving cannot change what a seed produces
        self._rng = random.Random(f"{self.seed}:albums")
        self._world = World(self.bot_user, random.Random(f"{self.seed}:queries"))
        self._files = FileStore(random.Random(f"{self.seed}:files"))
        self._feed.reset()
        self._calls: list[Call] = []
        self._presses: dict[int, str] = {}  # update_id of a button press -> its callback query id
        self._arrivals: list[str] = []    # methods in the order their requests reached us
        self.peak_in_flight = 0     # most Bot API calls (long polls aside) being answered at once
        self._faults = Faults()
        self._limiter = FloodLimiter(self._clock)
        self._commands: dict[str, list[dict[str, Any]]] = {}
        self._payments = StarPayments(self._world, self._feed, self._changed, self._stop_event,
                                      lambda: self.pre_checkout_timeout_s)

    # ------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """Base URL, i.e. TELEGRAM_API_URL; only valid once started."""
        if self._server is None:
            raise RuntimeError("TelegramSim is not started")
        return f"http://{self.host}:{self._server.server_address[1]}"

    @property
    def api_version(self) -> str:
        """The Bot API version of the spec the simulator validates against."""
        return self._spec.version

    def start(self) -> TelegramSim:
        """Serve on background threads; returns self so `sim = TelegramSim().start()` reads well."""
        if self._server is not None:
            return self
        self._stop_event.clear()
        self._server = SimServer((self.host, self.port), self)
        self._threads = [
            threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                             name="telegram-sim-http", daemon=True),
            threading.Thread(target=self._feed.run_webhook_loop, name="telegram-sim-webhook",
                             daemon=True)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: wake every waiter, close every connection, join every thread."""
        server = self._server
        if server is None:
            return
        with self._changed:
            self._stop_event.set()
            self._changed.notify_all()
        server.shutdown()
        server.close_connections()
        server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        self._server, self._threads = None, []

    def __enter__(self) -> TelegramSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget chats, calls, files, faults, payments and the webhook; update_ids keep increasing
        (and charge ids never repeat)."""
        with self._changed:
            self._reset_state()
            self._changed.notify_all()

    # ------------------------------------------------------------ scripted users

    def user_sends(self, user_id: int, text: str, *, chat_id: int | None = None,
                   language_code: str = "en", first_name: str = "Test") -> int:
        """A user types `text`; returns the queued update_id. Writing again unblocks the bot."""
        with self._changed:
            user = self._world.touch_user(user_id, first_name, language_code)
            self._world.blocked.discard(user_id)
            return self._feed.queue("message", self._world.user_text(user, chat_id, text))

    def user_sends_photo(self, user_id: int, data: bytes, *, caption: str | None = None,
                         chat_id: int | None = None) -> int:
        """A user sends a photo (PNG/JPEG/GIF/WebP bytes); returns the queued update_id."""
        size = image_size(data)
        if size is None:
            raise ValueError("user_sends_photo needs PNG, JPEG, GIF or WebP bytes")
        with self._changed:
            user = self._world.users.get(user_id) or self._world.touch_user(user_id)
            stored = self._files.add("photo", data, mime_type="image/jpeg", width=size[0],
                                     height=size[1])
            message = self._world.user_photo(user, chat_id, stored, self._files, caption)
            return self._feed.queue("message", message)

    def user_sends_document(self, user_id: int, data: bytes, *, mime_type: str | None, file_name: str | None,
                            caption: str | None = None, chat_id: int | None = None) -> int:
        """A user sends any bytes as a file ("send as file"), with the MIME type and name their
        client gives, which Telegram passes on unchecked; returns the queued update_id."""
        with self._changed:
            user = self._world.users.get(user_id) or self._world.touch_user(user_id)
            stored = self._files.add("document", data, mime_type=mime_type, file_name=file_name)
            content = self._files.content("document", stored, {})
            if caption:
                content["caption"] = caption
            return self._feed.queue("message", self._world.chat_of(user, chat_id).add(user, content))

    def user_deletes(self, chat_id: int, message_id: int) -> None:
        """Someone deletes a message of the chat (a user their own; in a group an admin anyone's).
        The bot hears nothing of it, as in Telegram; a later reply to it finds no message."""
        with self._changed:
            self._world.delete(chat_id, message_id)
            self._changed.notify_all()

    def user_presses(self, user_id: int, button_text: str, *, chat_id: int | None = None,
                     message_id: int | None = None) -> int:
        """Press an inline button (exact text, else substring) on the newest bot message having it."""
        with self._changed:
            user = self._world.users.get(user_id) or self._world.touch_user(user_id)
            query = self._world.press(user, user_id if chat_id is None else chat_id,
                                      button_text, message_id)
            update_id = self._feed.queue("callback_query", query)
            self._presses[update_id] = query["id"]
            return update_id

    def user_pays(self, user_id: int, invoice_message_id: int | None = None, *,
                  chat_id: int | None = None, link: str | None = None) -> PaymentAttempt:
        """The user presses Pay on an invoice message in `chat_id` (default their private chat;
        the newest one they have not paid unless `invoice_message_id`) or opens an invoice
        `link`: the bot gets a pre_checkout_query to answer within pre_checkout_timeout_s.
        Returns the attempt as it starts; wait_for_payment() tells how it ended."""
        return self._payments.pay(user_id, invoice_message_id, chat_id, link)

    def redeliver_successful_payment(self, charge_id: str) -> int:
        """Send the successful_payment message of `charge_id` again as a new update (as after a
        webhook retry or a restart); returns its update_id."""
        return self._payments.redeliver(charge_id)

    def set_pre_checkout_timeout(self, seconds: float) -> None:
        """How long the bot has to answer a pre_checkout_query (Telegram: 10 s), for new ones."""
        if not 0 < seconds < float("inf"):
            raise ValueError("the pre-checkout timeout must be a positive number of seconds")
        self.pre_checkout_timeout_s = seconds

    def block_bot(self, user_id: int) -> None:
        """The user blocks the bot: sends to their private chat answer 403."""
        with self._lock:
            self._world.blocked.add(user_id)

    def unblock_bot(self, user_id: int) -> None:
        """Undo block_bot (writing to the bot does this too)."""
        with self._lock:
            self._world.blocked.discard(user_id)

    # ------------------------------------------------------------ observation

    def chat(self, chat_id: int) -> list[ChatMessage]:
        """The chat as the user sees it now, oldest first (edits applied, deletions gone)."""
        with self._lock:
            return self._world.view(chat_id)

    def chats(self) -> list[dict[str, Any]]:
        """The Chat JSON of every chat someone wrote in, oldest first."""
        with self._lock:
            return [dict(chat.info) for chat in self._world.chats.values()]

    def payment_attempt(self, query_id: str) -> PaymentAttempt:
        """A press of Pay as it stands now; LookupError for an unknown pre_checkout_query id."""
        return self._payments.attempt(query_id)

    def payment_attempts(self) -> list[PaymentAttempt]:
        """Every press of Pay since the last reset, oldest first."""
        return self._payments.attempts()

    def wait_for_payment(self, query_id: str, timeout: float = 15.0) -> PaymentAttempt:
        """Block until the attempt is paid, declined or expired (at its deadline at the latest)."""
        return self._payments.wait_settled(query_id, timeout)

    def star_payments(self) -> list[StarPayment]:
        """Every Stars charge since the last reset, oldest first, refunded ones flagged."""
        return self._payments.payments()

    def calls(self, method: str | None = None) -> list[Call]:
        """Every Bot API call so far, in order; optionally only one method (any spelling)."""
        with self._lock:
            wanted = self._canonical(method)
            return [c for c in self._calls if wanted is None or c.method == wanted]

    def arrivals(self, method: str) -> int:
        """How many requests of `method` reached the simulator, answered or not."""
        wanted = self._canonical(method) or method
        with self._lock:
            return self._arrivals.count(wanted)

    def wait_for_arrival(self, method: str, count: int = 1, timeout: float = 5.0) -> None:
        """Block until `count` requests of `method` reached the simulator, answered or not (a
        slowed call is on the wire from here until calls() records it)."""
        wanted = self._canonical(method)
        self._wait(lambda: True if self._arrivals.count(wanted or "") >= count else None, timeout,
                   f"{count} {wanted} request(s) to arrive", lambda: f"arrived: {self._arrivals[-8:]}")

    def webhook_deliveries(self) -> list[WebhookDelivery]:
        """Every attempt to POST an update to the webhook, in order."""
        with self._lock:
            return list(self._feed.deliveries)

    def wait_for_deliveries(self, count: int = 1, timeout: float = 5.0) -> list[WebhookDelivery]:
        """Block until `count` webhook attempts (any outcome) were made; return them all."""
        feed = self._feed
        return self._wait(lambda: list(feed.deliveries) if len(feed.deliveries) >= count else None,
                          timeout, f"{count} webhook deliveries",
                          lambda: f"saw {self._feed.deliveries}")

    def file_bytes(self, file_id: str) -> bytes:
        """The bytes behind a file_id the bot sent or a user uploaded; KeyError if unknown."""
        with self._lock:
            stored = self._files.get(file_id)
        if stored is None:
            raise KeyError(file_id)
        return stored.data

    def file_mime_type(self, file_id: str) -> str | None:
        """The MIME type a file was uploaded or fetched with, if known."""
        stored = self._files.get(file_id)
        return None if stored is None else stored.mime_type

    def wait_for_call(self, method: str, count: int = 1, timeout: float = 5.0,
                      predicate: Callable[[Call], bool] | None = None) -> list[Call]:
        """Block until `count` calls of `method` (matching `predicate`) exist; return them all."""
        wanted = self._canonical(method)

        def matching() -> list[Call]:
            return [c for c in self._calls
                    if c.method == wanted and (predicate is None or predicate(c))]

        what = f"{count} {wanted} call(s)" + (f" matching {_name(predicate)}" if predicate else "")
        return self._wait(lambda: (found if len(found := matching()) >= count else None), timeout,
                          what, lambda: f"saw {len(matching())}; last calls: {self._tail()}")

    def callback_answer(self, update_id: int, timeout: float = 5.0) -> CallbackAnswer:
        """Block until the bot answers the button press queued as `update_id` (what the user's
        client shows then); LookupError if no press has that update_id."""
        with self._lock:
            query_id = self._presses.get(update_id)
        if query_id is None:
            raise LookupError(f"no button press has update_id {update_id}")

        def answered() -> CallbackAnswer | None:
            call = next((c for c in self._calls if c.method == "answerCallbackQuery"
                         and c.status == 200 and str(c.params.get("callback_query_id")) == query_id),
                        None)
            if call is None:
                return None
            return CallbackAnswer(call.params.get("text") or None, bool(call.params.get("show_alert")))

        return self._wait(answered, timeout, f"the answer to the press in update {update_id}",
                          lambda: f"last calls: {self._tail()}")

    def wait_for_chat(self, chat_id: int, predicate: Callable[[list[ChatMessage]], bool],
                      timeout: float = 5.0) -> list[ChatMessage]:
        """Block until the chat view satisfies `predicate`; return that view."""
        def check() -> list[ChatMessage] | None:
            view = self._world.view(chat_id)
            return view if predicate(view) else None

        return self._wait(check, timeout, f"chat {chat_id} to match {_name(predicate)}",
                          lambda: f"chat is {self._world.view(chat_id)}")

    def wait_for_polling(self, timeout: float = 5.0) -> None:
        """Block until a getUpdates long poll is being held open, i.e. the bot is listening."""
        self._wait(lambda: True if self._feed.polls_held else None, timeout,
                   "a getUpdates long poll", lambda: f"last calls: {self._tail()}")

    def _wait(self, check: Callable[[], Any], timeout: float, what: str,
              context: Callable[[], str]) -> Any:
        """Wait on the simulator's condition until `check` returns non-None; caller holds no lock."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = check()
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}; "
                                         f"{context()}")
                self._changed.wait(remaining)

    def _tail(self) -> str:
        return ", ".join(f"{c.method}->{c.status}" for c in self._calls[-8:]) or "none"

    def _canonical(self, method: str | None) -> str | None:
        """Method names match case-insensitively, like Telegram's router."""
        if method is None:
            return None
        return self._spec.method_name(method) or method

    # ------------------------------------------------------------ fault injection

    def fail_next(self, method: str, n: int = 1, status: int = 429, retry_after: int = 1,
                  description: str | None = None) -> None:
        """The next `n` calls of `method` fail with `status` without being performed."""
        with self._lock:
            queue = self._faults.failures[self._canonical(method) or method]
            queue.extend(Failure(status, retry_after, description) for _ in range(n))

    def drop_next_response(self, method: str, n: int = 1) -> None:
        """The next `n` calls are performed and recorded, then the connection closes unanswered."""
        with self._lock:
            self._faults.drops[self._canonical(method) or method] += n

    def migrate_chat(self, chat_id: int, new_chat_id: int) -> None:
        """Group `chat_id` becomes supergroup `new_chat_id` (<= -10**12): from now on every send
        to the old id is refused with 400 and `parameters.migrate_to_chat_id`, as Telegram does."""
        if chat_id >= 0 or new_chat_id > -1_000_000_000_000:
            raise ValueError("a group (negative id) migrates to a supergroup id <= -10**12")
        with self._changed:
            self._world.chat_of(self.bot_user, new_chat_id)
            self._faults.migrated[chat_id] = new_chat_id
            self._changed.notify_all()

    def reset_next(self, method: str, n: int = 1, *, performed: bool = False) -> None:
        """The next `n` calls of `method` end in a TCP reset with no answer: before they are
        performed, or (`performed`) after, like a crashed proxy in front of Telegram."""
        with self._lock:
            self._faults.resets[self._canonical(method) or method].extend([performed] * n)

    def spare_next(self, method: str, n: int = 1) -> None:
        """The next `n` calls of `method` pass untouched by the faults scripted for it (delays
        still apply), so that a fault hits a later call: the second album, say."""
        with self._lock:
            self._faults.spares[self._canonical(method) or method] += n

    def slow(self, method: str, seconds: float) -> None:
        """Every call of `method` waits `seconds` before it is performed (0 turns this off)."""
        with self._lock:
            self._faults.delays[self._canonical(method) or method] = seconds

    # ------------------------------------------------------------ the request pipeline

    def handle_api(self, token: str, name: str, raw: dict[str, Any], uploads: dict[str, Upload],
                   refused: ApiError | None = None) -> tuple[int, dict[str, Any], str]:
        """Answer one Bot API request: (HTTP status, JSON body, how to hang up without answering:
        "" answers, "close" drops the response, "reset" resets the connection).

        `refused` is an error found while reading the body (too large, unparsable).
        """
        at = self._clock()
        method = self._spec.method_name(name)
        params: dict[str, Any] = dict(raw)
        counted = method != "getUpdates"        # a long poll is always open; count the rest
        hangup = ""
        with self._lock:
            spared = method is not None and self._faults.take_spare(method)
        if counted:
            with self._changed:
                self._in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
                self._arrivals.append(method or name)
                self._changed.notify_all()
        try:
            if token != self.token:
                raise ApiError(401, "Unauthorized")
            if method is None:
                raise ApiError(404, "Not Found: method not found")
            if refused is not None:
                raise refused
            if self._before(method, spared):
                status, body, hangup = 0, {}, "reset"       # reset before anything was performed
            else:
                params = self._spec.decode(method, raw, uploads)
                self._admit(method, params)
                handler = self._handlers.get(method)
                if handler is None:
                    raise ApiError(501, f"Not Implemented: the simulator does not implement {method}")
                status, body = 200, {"ok": True, "result": handler(params, uploads)}
        except ApiError as exc:
            status, body = exc.status, exc.payload()
        finally:
            if counted:
                with self._lock:
                    self._in_flight -= 1
        with self._changed:
            self._calls.append(Call(method or name, params, status, body, at))
            if not hangup and method is not None and not spared:
                hangup = ("reset" if self._faults.take_reset(method, performed=True)
                          else "close" if self._faults.take_drop(method) else "")
            self._changed.notify_all()
        return status, body, hangup

    def _before(self, method: str, spared: bool = False) -> bool:
        """Scripted delay, then (unless this call is spared) a scripted reset or failure, before
        anything is performed. True: reset the connection now."""
        with self._lock:
            delay = self._faults.delays.get(method, 0.0)
        if delay > 0:
            self._stop_event.wait(delay)
        if spared:
            return False
        with self._lock:
            if self._faults.take_reset(method, performed=False):
                return True
            failure = self._faults.take_failure(method)
        if failure is not None:
            raise failure
        return False

    def _admit(self, method: str, params: dict[str, Any]) -> None:
        """Chat must exist; blocked users refuse sends; flood limits when enforced."""
        chat_id = params.get("chat_id")
        if chat_id is None:
            return
        with self._lock:
            self._world.target(chat_id)
            migrated = self._faults.migration(method, chat_id)
            if migrated is not None:
                raise migrated
            if method.startswith("send") and chat_id in self._world.blocked:
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            if self.enforce_limits and counts_for_flood(method):
                self._limiter.charge(chat_id, len(params.get("media") or [None]))

    # ------------------------------------------------------------ the bot itself

    def _get_me(self, p: dict[str, Any], up: dict[str, Upload]) -> dict[str, Any]:
        """The bot's User, with the capability flags getMe adds."""
        return {**self.bot_user, "can_join_groups": True, "can_read_all_group_messages": False,
                "supports_inline_queries": False, "can_connect_to_business": False,
                "has_main_web_app": False}

    # ------------------------------------------------------------ messages

    def _send_message(self, p: dict[str, Any], up: dict[str, Upload]) -> dict[str, Any]:
        """sendMessage: formatted text, an inline keyboard, an optional reply."""
        content = {**text_content(p["text"], p), **markup_content(p)}
        with self._lock:
            content.update(self._reply_to(p))
            return self._world.bot_sends(p["chat_id"], content)

    def _edit_target(self, p: dict[str, Any]) -> tuple[int, int]:
        """Only chat_id + message_id edits are simulated (no inline messages)."""
        if "inline_message_id" in p:
            raise bad_request("MESSAGE_ID_INVALID")
        if "chat_id" not in p:
            raise bad_request("chat_id is empty")
        if "message_id" not in p:
            raise bad_request("message identifier is not specified")
        return p["chat_id"], p["message_id"]

    def _edit_message_text(self, p: dict[str, Any], up: dict[str, Upload]) -> dict[str, Any]:
        """Without reply_markup the keyboard goes away, as in Telegram."""
        chat_id, message_id = self._edit_target(p)
        content = {**text_content(p["text"], p), **markup_content(p)}
        with self._lock:
            if "text" not in self._world.bot_message(chat_id, message_id):
                raise bad_request("there is no text in the message to edit")
            return self._world.edit(chat_id, message_id, content, ("entities", "reply_markup"))

    def _edit_message_caption(self, p: dict[str, Any], up: dict[str, Upload]) -> dict[str, Any]:
        """Captions live on media messages only."""
        chat_id, message_id = self._edit_target(p)
        content = {**caption_content(p), **markup_content(p)}
        with self._lock:
            if "text" in self._world.bot_message(chat_id, message_id):
                raise bad_request("there is no caption in the message to edit")
            return self._world.edit(chat_id, message_id, content,
                                    ("caption", "caption_entities", "reply_markup"))

    def _edit_message_reply_markup(self, p: dict[str, Any], up: dict[str, Upload]) -> dict[str, Any]:
        """Omitting reply_markup removes the keyboard."""
        chat_id, message_id = self._edit_target(p)
        with self._lock:
            return self._world.edit(chat_id, message_id, markup_content(p), ("reply_markup",))

    def _delete_message(self, p: dict[str, Any], up: dict[str, Upload]) -> bool:
        """Gone from the chat view; a second delete is 'not found'."""
        with self._lock:
            self._world.delete(p["chat_id"], p["message_id"])
        return True

    def _answer_callback_query(self, p: dict[str, Any], up: dict[str, Upload]) -> bool:
        """Each query may be answered once; the toast text is at most 200 chars."""
        if len(p.get("text", "")) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        with self._lock:
            self._world.answer(p["callback_query_id"])
        return True

    def _send_chat_action(self, p: dict[str, Any], up: dict[str, Upload]) -> bool:
        """Validated and recorded; chat actions leave nothing in the chat view."""
        if p["action"] not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        return True

    def _commands_key(self, p: dict[str, Any]) -> str:
        """Commands are stored per (scope, language_code) like Telegram does."""
        return json.dumps([p.get("scope") or {"type": "default"}, p.get("language_code", "")],
                          sort_keys=True)

    def _set_my_commands(self, p: dict[str, Any], up: dict[str, Upload]) -> bool:
        """Telegram's rules: lowercase 1-32 char names, 1-256 char descriptions."""
        if len(p["commands"]) > 100:
            raise bad_request("too many commands")
        for command in p["commands"]:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", command["command"]):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(command["description"]) <= 256:
                raise bad_request("command description must be 1-256 characters")
        with self._lock:
            self._commands[self._commands_key(p)] = [
                {"command": c["command"], "description": c["description"]} for c in p["commands"]]
        return True

    def _get_my_commands(self, p: dict[str, Any], up: dict[str, Upload]) -> list[dict[str, Any]]:
        """The commands last set for this scope and language."""
        with self._lock:
            return list(self._commands.get(self._commands_key(p), []))

    def _delete_my_commands(self, p: dict[str, Any], up: dict[str, Upload]) -> bool:
        """Forget the commands for this scope and language."""
        with self._lock:
            self._commands.pop(self._commands_key(p), None)
        return True

    def _reply_to(self, p: dict[str, Any]) -> dict[str, Any]:
        """reply_parameters: the original must exist unless sending without reply is allowed."""
        reply = p.get("reply_parameters")
        if not reply:
            return {}
        chat = self._world.target(reply.get("chat_id", p["chat_id"]))
        original = chat.messages.get(reply["message_id"])
        if original is None:
            if reply.get("allow_sending_without_reply"):
                return {}
            raise bad_request("message to be replied not found")
        return {"reply_to_message": {k: v for k, v in original.items() if k != "reply_to_message"}}

    def _paying(self, name: str) -> Callable[[dict[str, Any], dict[str, Upload]], Any]:
        """A payments method as a handler; looked up per call, since reset() replaces the state."""
        def handle(p: dict[str, Any], up: dict[str, Upload]) -> Any:
            return getattr(self._payments, name)(p)
        handle.__name__ = name
        return handle

    # ------------------------------------------------------------ media

    def _sender(self, kind: str) -> Callable[[dict[str, Any], dict[str, Upload]], Any]:
        """One handler per media kind: resolve the file outside the lock, then post it."""
        def send(p: dict[str, Any], up: dict[str, Upload]) -> dict[str, Any]:
            stored = self._files.resolve(kind, p[kind], up, self.allow_remote_urls)
            with self._lock:
                content = {**self._files.content(kind, stored, p), **caption_content(p),
                           **markup_content(p), **self._reply_to(p)}
                return self._world.bot_sends(p["chat_id"], content)
        send.__name__ = f"send_{kind}"
        return send

    def _send_media_group(self, p: dict[str, Any], up: dict[str, Upload]) -> list[dict[str, Any]]:
        """2-10 items; documents and audio only group with their own kind."""
        items = p["media"]
        if len(items) > 10:
            raise bad_request("Too much messages to send as an album")
        if len(items) < 2:
            raise bad_request("media group must contain 2-10 items")
        kinds = {item["type"] for item in items}
        for lonely in ("document", "audio"):
            if lonely in kinds and kinds != {lonely}:
                raise bad_request(f"{lonely} can't be mixed with other media types")
        stored = [self._files.resolve(item["type"], item["media"], up, self.allow_remote_urls)
                  for item in items]
        with self._lock:
            group_id = str(self._rng.getrandbits(62))
            extra = self._reply_to(p)
            return [self._world.bot_sends(p["chat_id"], {
                **self._files.content(item["type"], file, item), **caption_content(item), **extra,
                "media_group_id": group_id}) for item, file in zip(items, stored, strict=True)]

    def _get_file(self, p: dict[str, Any], up: dict[str, Upload]) -> dict[str, Any]:
        """getFile: a file_path for the download route; files over 20 MB are refused."""
        with self._lock:
            stored = self._files.get(p["file_id"])
        if stored is None:
            raise bad_request("invalid file_id")
        if len(stored.data) > GET_FILE_LIMIT:
            raise bad_request("file is too big")
        return {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                "file_size": len(stored.data), "file_path": stored.file_path}

    def download(self, token: str, file_path: str) -> bytes | None:
        """Bytes served at /file/bot<token>/<file_path>, or None (404)."""
        with self._lock:
            stored = self._files.by_path(file_path) if token == self.token else None
        return None if stored is None else stored.data

    # ------------------------------------------------------------ control API

    def control(self, verb: str, name: str, query: dict[str, str],
                body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The /__sim/ JSON API: the same helpers, for a test or demo in another process."""
        return answer_control(self, verb, name, query, body)


def _name(predicate: Callable[..., Any] | None) -> str:
    return getattr(predicate, "__name__", repr(predicate))
