"""Telegram Bot API simulator: a real HTTP server on 127.0.0.1 that python-telegram-bot uses unmodified.

Owns: the HTTP surface (/bot<token>/<method>, /file/bot<token>/<path>, the /__sim/ control API),
the dispatch table of implemented methods, the update feed (long polling and webhook delivery),
the call transcript, flood limits and fault injection. Scripted users and chats live in
telegram_chats; wire decoding and validation in telegram_spec. It fetches only the URLs the bot
hands it, and only on loopback unless `allow_remote_urls` is set.
"""
from __future__ import annotations

import base64
import json
import math
import random
import re
import socket
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections import Counter, defaultdict, deque
from dataclasses import asdict, dataclass, field
from http.client import HTTPException
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote, urlsplit

from sim.telegram_chats import (FILE_UPLOAD_LIMIT, MB, ChatMessage, FileStore, World,
                                caption_content, image_size, markup_content, text_content)
from sim.telegram_spec import ApiError, Spec, Upload, bad_request, parse_body

__all__ = ["Call", "ChatMessage", "TelegramSim", "WebhookDelivery"]

GET_FILE_LIMIT = 20 * MB
MAX_BODY_BYTES = FILE_UPLOAD_LIMIT + 2 * MB
WEBHOOK_TIMEOUT_S = 5.0
CHAT_ACTIONS = frozenset({"typing", "upload_photo", "record_video", "upload_video", "record_voice",
                          "upload_voice", "upload_document", "choose_sticker", "find_location",
                          "record_video_note", "upload_video_note"})
CONFLICT_POLL = ("Conflict: terminated by other getUpdates request; "
                 "make sure that only one bot instance is running")
CONFLICT_WEBHOOK = ("Conflict: can't use getUpdates method while webhook is active; "
                    "use deleteWebhook to delete the webhook first")
_FAULT_TEXT = {400: "Bad Request: simulated failure", 403: "Forbidden: bot was blocked by the user",
               500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


@dataclass
class Call:
    """One Bot API request as the simulator saw and answered it."""

    method: str
    params: dict[str, Any]
    status: int
    response: dict[str, Any]
    at: float


@dataclass
class WebhookDelivery:
    """One attempt to POST an update to the bot's webhook."""

    update_id: int
    attempt: int
    status: int | None
    error: str | None
    at: float


@dataclass
class _Webhook:
    url: str
    secret_token: str | None
    max_connections: int
    allowed_updates: list[str] | None
    attempts: int = 0
    retry_at: float = 0.0
    last_error_date: int | None = None
    last_error_message: str | None = None


@dataclass
class _Failure:
    status: int
    retry_after: int
    description: str | None


@dataclass
class _Faults:
    """Scripted misbehaviour, consumed per method."""

    failures: dict[str, deque[_Failure]] = field(default_factory=lambda: defaultdict(deque))
    drops: Counter[str] = field(default_factory=Counter)
    delays: dict[str, float] = field(default_factory=dict)

    def take_failure(self, method: str) -> ApiError | None:
        """The next scripted error for `method`, shaped like Telegram's."""
        queue = self.failures.get(method)
        if not queue:
            return None
        failure = queue.popleft()
        if failure.status == 429:
            return ApiError(429, failure.description or
                            f"Too Many Requests: retry after {failure.retry_after}",
                            {"retry_after": failure.retry_after})
        return ApiError(failure.status, failure.description or
                        _FAULT_TEXT.get(failure.status, "Simulated failure"))

    def take_drop(self, method: str) -> bool:
        """Whether this call's response is to be swallowed."""
        if self.drops[method] <= 0:
            return False
        self.drops[method] -= 1
        return True


class _FloodLimiter:
    """Token buckets: ~30 msg/s per bot, 1 msg/s per private chat (burst 3), 20/min per group.

    An album may drive a bucket into debt, so it passes once and delays what follows.
    """

    BOT = (30.0, 30.0)  # (burst, refill per second)
    PRIVATE = (3.0, 1.0)
    GROUP = (20.0, 20.0 / 60.0)

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._buckets: dict[Any, list[float]] = {}  # key -> [tokens, updated]

    def charge(self, chat_id: int | str, count: int) -> None:
        """Spend `count` messages or raise 429 with the whole seconds to wait."""
        now = self._clock()
        private = isinstance(chat_id, int) and chat_id > 0
        rules = [("bot", self.BOT), (("chat", chat_id), self.PRIVATE if private else self.GROUP)]
        waits = []
        for key, (burst, rate) in rules:
            bucket = self._buckets.setdefault(key, [burst, now])
            bucket[0] = min(burst, bucket[0] + (now - bucket[1]) * rate)
            bucket[1] = now
            waits.append((min(count, burst) - bucket[0]) / rate)
        wait = max(waits)
        if wait > 1e-9:
            seconds = max(1, math.ceil(wait))
            raise ApiError(429, f"Too Many Requests: retry after {seconds}", {"retry_after": seconds})
        for key, _ in rules:
            self._buckets[key][0] -= count


class TelegramSim:
    """A stateful fake of api.telegram.org for one bot, plus the users who talk to it."""

    WEBHOOK_MAX_ATTEMPTS = 5
    WEBHOOK_BACKOFF_S = 0.05  # doubles per failed attempt

    def __init__(self, token: str = "123456:TEST-sim-token", host: str = "127.0.0.1", port: int = 0,
                 seed: int = 0, enforce_limits: bool = False, bot_username: str = "kiebot_sim_bot",
                 *, clock: Callable[[], float] = time.monotonic) -> None:
        if not re.fullmatch(r"\d+:[\w-]+", token):
            raise ValueError("token must look like '<bot id>:<secret>'")
        self.token, self.host, self.port = token, host, port
        self.seed, self.enforce_limits, self.bot_username = seed, enforce_limits, bot_username
        self.allow_remote_urls = False
        self._clock = clock
        self._spec = Spec()
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._stop_event = threading.Event()
        self._next_update_id = 1
        self._poll_generation = 0
        self._polls_held = 0
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._handlers: dict[str, Callable[[dict[str, Any], dict[str, Upload]], Any]] = {
            "getMe": self._get_me, "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook, "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info, "sendMessage": self._send_message,
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
        }
        self._reset_state()

    def _reset_state(self) -> None:
        """Everything reset() forgets; update_ids and the poll generation survive it."""
        bot_id = int(self.token.split(":", 1)[0])
        self.bot_user = {"id": bot_id, "is_bot": True, "first_name": "Kiebot Sim",
                         "username": self.bot_username}
        # one generator per concern, so thread interleaving cannot change what a seed produces
        self._rng = random.Random(f"{self.seed}:albums")
        self._world = World(self.bot_user, random.Random(f"{self.seed}:queries"))
        self._files = FileStore(random.Random(f"{self.seed}:files"))
        self._pending: list[dict[str, Any]] = []
        self._calls: list[Call] = []
        self._deliveries: list[WebhookDelivery] = []
        self._webhook: _Webhook | None = None
        self._faults = _Faults()
        self._limiter = _FloodLimiter(self._clock)
        self._commands: dict[str, list[dict[str, Any]]] = {}

    # ------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """Base URL, i.e. TELEGRAM_API_URL; only valid once started."""
        if self._server is None:
            raise RuntimeError("TelegramSim is not started")
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> TelegramSim:
        """Serve on background threads; returns self so `sim = TelegramSim().start()` reads well."""
        if self._server is not None:
            return self
        self._stop_event.clear()
        self._server = _Server((self.host, self.port), self)
        self._threads = [
            threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                             name="telegram-sim-http", daemon=True),
            threading.Thread(target=self._webhook_loop, name="telegram-sim-webhook", daemon=True)]
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
        """Forget chats, calls, files, faults and the webhook; update_ids keep increasing."""
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
            return self._queue_update("message", self._world.user_text(user, chat_id, text))

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
            return self._queue_update("message", message)

    def user_presses(self, user_id: int, button_text: str, *, chat_id: int | None = None,
                     message_id: int | None = None) -> int:
        """Press an inline button (exact text, else substring) on the newest bot message having it."""
        with self._changed:
            user = self._world.users.get(user_id) or self._world.touch_user(user_id)
            query = self._world.press(user, user_id if chat_id is None else chat_id,
                                      button_text, message_id)
            return self._queue_update("callback_query", query)

    def block_bot(self, user_id: int) -> None:
        """The user blocks the bot: sends to their private chat answer 403."""
        with self._lock:
            self._world.blocked.add(user_id)

    def unblock_bot(self, user_id: int) -> None:
        """Undo block_bot (writing to the bot does this too)."""
        with self._lock:
            self._world.blocked.discard(user_id)

    def _queue_update(self, kind: str, payload: dict[str, Any]) -> int:
        """Append an update for polling or the webhook, waking whoever waits."""
        update_id = self._next_update_id
        self._next_update_id += 1
        self._pending.append({"update_id": update_id, kind: payload})
        self._changed.notify_all()
        return update_id

    # ------------------------------------------------------------ observation

    def chat(self, chat_id: int) -> list[ChatMessage]:
        """The chat as the user sees it now, oldest first (edits applied, deletions gone)."""
        with self._lock:
            return self._world.view(chat_id)

    def calls(self, method: str | None = None) -> list[Call]:
        """Every Bot API call so far, in order; optionally only one method (any spelling)."""
        with self._lock:
            wanted = self._canonical(method)
            return [c for c in self._calls if wanted is None or c.method == wanted]

    def webhook_deliveries(self) -> list[WebhookDelivery]:
        """Every attempt to POST an update to the webhook, in order."""
        with self._lock:
            return list(self._deliveries)

    def wait_for_deliveries(self, count: int = 1, timeout: float = 5.0) -> list[WebhookDelivery]:
        """Block until `count` webhook attempts (any outcome) were made; return them all."""
        return self._wait(lambda: list(self._deliveries) if len(self._deliveries) >= count else None,
                          timeout, f"{count} webhook deliveries",
                          lambda: f"saw {self._deliveries}")

    def file_bytes(self, file_id: str) -> bytes:
        """The bytes behind a file_id the bot sent or a user uploaded; KeyError if unknown."""
        with self._lock:
            stored = self._files.get(file_id)
        if stored is None:
            raise KeyError(file_id)
        return stored.data

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
        self._wait(lambda: True if self._polls_held else None, timeout,
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
            queue.extend(_Failure(status, retry_after, description) for _ in range(n))

    def drop_next_response(self, method: str, n: int = 1) -> None:
        """The next `n` calls are performed and recorded, then the connection closes unanswered."""
        with self._lock:
            self._faults.drops[self._canonical(method) or method] += n

    def slow(self, method: str, seconds: float) -> None:
        """Every call of `method` waits `seconds` before it is performed (0 turns this off)."""
        with self._lock:
            self._faults.delays[self._canonical(method) or method] = seconds

    # ------------------------------------------------------------ the request pipeline

    def handle_api(self, token: str, name: str, raw: dict[str, Any], uploads: dict[str, Upload],
                   refused: ApiError | None = None) -> tuple[int, dict[str, Any], bool]:
        """Answer one Bot API request: (HTTP status, JSON body, drop the response?).

        `refused` is an error found while reading the body (too large, unparsable).
        """
        at = self._clock()
        method = self._spec.method_name(name)
        params: dict[str, Any] = dict(raw)
        try:
            if token != self.token:
                raise ApiError(401, "Unauthorized")
            if method is None:
                raise ApiError(404, "Not Found: method not found")
            if refused is not None:
                raise refused
            self._before(method)
            params = self._spec.decode(method, raw, uploads)
            self._admit(method, params)
            handler = self._handlers.get(method)
            if handler is None:
                raise ApiError(501, f"Not Implemented: the simulator does not implement {method}")
            status, body = 200, {"ok": True, "result": handler(params, uploads)}
        except ApiError as exc:
            status, body = exc.status, exc.payload()
        with self._changed:
            self._calls.append(Call(method or name, params, status, body, at))
            drop = method is not None and self._faults.take_drop(method)
            self._changed.notify_all()
        return status, body, drop

    def _before(self, method: str) -> None:
        """Scripted delay and failures happen before anything is performed."""
        with self._lock:
            delay = self._faults.delays.get(method, 0.0)
        if delay > 0:
            self._stop_event.wait(delay)
        with self._lock:
            failure = self._faults.take_failure(method)
        if failure is not None:
            raise failure

    def _admit(self, method: str, params: dict[str, Any]) -> None:
        """Chat must exist; blocked users refuse sends; flood limits when enforced."""
        chat_id = params.get("chat_id")
        if chat_id is None:
            return
        with self._lock:
            self._world.target(chat_id)
            if method.startswith("send") and chat_id in self._world.blocked:
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            if self.enforce_limits and _counts_for_flood(method):
                self._limiter.charge(chat_id, len(params.get("media") or [None]))

    # ------------------------------------------------------------ updates

    def _get_me(self, p: dict[str, Any], up: dict[str, Upload]) -> dict[str, Any]:
        """The bot's User, with the capability flags getMe adds."""
        return {**self.bot_user, "can_join_groups": True, "can_read_all_group_messages": False,
                "supports_inline_queries": False, "can_connect_to_business": False,
                "has_main_web_app": False}

    def _get_updates(self, p: dict[str, Any], up: dict[str, Upload]) -> list[dict[str, Any]]:
        """Long poll; a newer getUpdates ends an older one with 409, as does a webhook."""
        offset, limit = p.get("offset"), min(max(p.get("limit", 100), 1), 100)
        deadline = time.monotonic() + min(max(p.get("timeout", 0), 0), 50)
        allowed = p.get("allowed_updates")
        with self._changed:
            if self._webhook is not None:
                raise ApiError(409, CONFLICT_WEBHOOK)
            self._poll_generation += 1
            generation = self._poll_generation
            self._confirm(offset)
            self._polls_held += 1
            self._changed.notify_all()  # ends an older poll; tells wait_for_polling()
            try:
                return self._hold_poll(generation, deadline, limit, allowed)
            finally:
                self._polls_held -= 1

    def _hold_poll(self, generation: int, deadline: float, limit: int,
                   allowed: list[str] | None) -> list[dict[str, Any]]:
        """Wait (lock released) for updates, a newer poll, a webhook, the deadline or stop."""
        while True:
            if self._poll_generation != generation:
                raise ApiError(409, CONFLICT_POLL)
            if self._webhook is not None:
                raise ApiError(409, CONFLICT_WEBHOOK)
            self._pending = [u for u in self._pending if _allowed(u, allowed)]
            remaining = deadline - time.monotonic()
            if self._pending or remaining <= 0 or self._stop_event.is_set():
                return self._pending[:limit]
            self._changed.wait(remaining)

    def _confirm(self, offset: int | None) -> None:
        """An offset forgets every earlier update; a negative one keeps only the last -offset."""
        if offset is None:
            return
        if offset < 0:
            self._pending = self._pending[offset:]
        else:
            self._pending = [u for u in self._pending if u["update_id"] >= offset]

    def _set_webhook(self, p: dict[str, Any], up: dict[str, Upload]) -> bool:
        """Register the webhook; http:// is accepted so tests can listen on loopback."""
        if not p["url"]:
            return self._delete_webhook(p, up)
        if not re.match(r"https?://[^\s/]+", p["url"]):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = p.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise bad_request("secret token contains unallowed characters")
        with self._changed:
            if p.get("drop_pending_updates"):
                self._pending.clear()
            self._webhook = _Webhook(p["url"], secret, p.get("max_connections", 40),
                                     p.get("allowed_updates"))
            self._changed.notify_all()
        return True

    def _delete_webhook(self, p: dict[str, Any], up: dict[str, Upload]) -> bool:
        """Back to polling, optionally dropping what is pending."""
        with self._changed:
            if p.get("drop_pending_updates"):
                self._pending.clear()
            self._webhook = None
            self._changed.notify_all()
        return True

    def _get_webhook_info(self, p: dict[str, Any], up: dict[str, Upload]) -> dict[str, Any]:
        """WebhookInfo, including the last delivery error Telegram reports."""
        with self._lock:
            hook = self._webhook
            info: dict[str, Any] = {"url": hook.url if hook else "", "has_custom_certificate": False,
                                    "pending_update_count": len(self._pending)}
            if hook:
                info["max_connections"] = hook.max_connections
                if hook.allowed_updates is not None:
                    info["allowed_updates"] = hook.allowed_updates
                if hook.last_error_date is not None:
                    info["last_error_date"] = hook.last_error_date
                    info["last_error_message"] = hook.last_error_message
            return info

    def _webhook_loop(self) -> None:
        """Deliver pending updates in order, one at a time, retrying with backoff until 2xx."""
        while (job := self._next_delivery()) is not None:
            hook, update = job
            status, error = _post_update(hook, update)
            self._after_delivery(hook, update, status, error)

    def _next_delivery(self) -> tuple[_Webhook, dict[str, Any]] | None:
        """The update at the head of the queue once a webhook is set and backoff allows."""
        with self._changed:
            while not self._stop_event.is_set():
                hook = self._webhook
                if hook is not None:
                    self._pending = [u for u in self._pending if _allowed(u, hook.allowed_updates)]
                if hook is None or not self._pending:
                    self._changed.wait()
                    continue
                delay = hook.retry_at - time.monotonic()
                if delay <= 0:
                    return hook, self._pending[0]
                self._changed.wait(delay)
            return None

    def _after_delivery(self, hook: _Webhook, update: dict[str, Any], status: int | None,
                        error: str | None) -> None:
        """Confirm on 2xx; otherwise back off, and give up after the last attempt."""
        with self._changed:
            if self._webhook is not hook:  # deleted, replaced or reset meanwhile
                return
            hook.attempts += 1
            self._deliveries.append(WebhookDelivery(update["update_id"], hook.attempts, status,
                                                    error, self._clock()))
            delivered = status is not None and 200 <= status < 300
            if delivered or hook.attempts >= self.WEBHOOK_MAX_ATTEMPTS:
                if self._pending and self._pending[0] is update:
                    self._pending.pop(0)
                hook.attempts, hook.retry_at = 0, 0.0
            else:
                hook.retry_at = time.monotonic() + self.WEBHOOK_BACKOFF_S * 2 ** (hook.attempts - 1)
            if not delivered:
                hook.last_error_date = int(time.time())
                hook.last_error_message = error or f"Wrong response from the webhook: {status}"
            self._changed.notify_all()

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
                "media_group_id": group_id}) for item, file in zip(items, stored)]

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
        route = _CONTROL.get((verb, name.split("/", 1)[0]))
        if route is None:
            return 404, {"error": f"no control route {verb} /__sim/{name}"}
        args = {**query, **body}
        if "/" in name:
            args["id"] = name.split("/", 1)[1]
        try:
            return 200, route(self, args)
        except LookupError as exc:
            return 404, {"error": str(exc)}
        except AssertionError as exc:
            return 408, {"error": str(exc)}
        except (TypeError, ValueError) as exc:
            return 400, {"error": str(exc)}


def _counts_for_flood(method: str) -> bool:
    """Only messages count: chat actions, polling and callback answers are free."""
    return method != "sendChatAction" and method.startswith(("send", "edit", "copy", "forward"))


def _allowed(update: dict[str, Any], allowed: list[str] | None) -> bool:
    """Telegram's default leaves out chat_member and reaction updates."""
    kind = next(k for k in update if k != "update_id")
    if allowed:
        return kind in allowed
    return kind not in ("chat_member", "message_reaction", "message_reaction_count")


def _post_update(hook: _Webhook, update: dict[str, Any]) -> tuple[int | None, str | None]:
    """POST one update the way Telegram does; (HTTP status or None, connection error)."""
    headers = {"Content-Type": "application/json"}
    if hook.secret_token:
        headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret_token
    request = urllib.request.Request(hook.url, data=json.dumps(update).encode(), headers=headers,
                                     method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=WEBHOOK_TIMEOUT_S) as response:
            response.read()
            return response.status, None
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code, None
    except (OSError, HTTPException) as exc:
        return None, f"Connection failed: {exc}"


def _name(predicate: Callable[..., Any] | None) -> str:
    return getattr(predicate, "__name__", repr(predicate))


def _jsonable(value: Any) -> Any:
    """Uploads become summaries so transcripts stay JSON for the control API."""
    if isinstance(value, Upload):
        return value.summary()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _opt_int(args: dict[str, Any], key: str) -> int | None:
    return None if args.get(key) in (None, "") else int(args[key])


_CONTROL: dict[tuple[str, str], Callable[[TelegramSim, dict[str, Any]], dict[str, Any]]] = {
    ("GET", "info"): lambda s, a: {"url": s.url, "token": s.token, "bot": s.bot_user,
                                   "api_version": s._spec.version},
    ("GET", "calls"): lambda s, a: {"calls": [_jsonable(asdict(c)) for c in s.calls(a.get("method"))]},
    ("GET", "chats"): lambda s, a: {"messages": [_jsonable(asdict(m)) for m in s.chat(int(a["id"]))]},
    ("POST", "send"): lambda s, a: {"update_id": s.user_sends(
        int(a["user_id"]), a["text"], chat_id=_opt_int(a, "chat_id"),
        language_code=a.get("language_code", "en"), first_name=a.get("first_name", "Test"))},
    ("POST", "send_photo"): lambda s, a: {"update_id": s.user_sends_photo(
        int(a["user_id"]), base64.b64decode(a["data_base64"]), caption=a.get("caption"),
        chat_id=_opt_int(a, "chat_id"))},
    ("POST", "press"): lambda s, a: {"update_id": s.user_presses(
        int(a["user_id"]), a["button_text"], chat_id=_opt_int(a, "chat_id"),
        message_id=_opt_int(a, "message_id"))},
    ("POST", "reset"): lambda s, a: s.reset() or {},
    ("POST", "block"): lambda s, a: s.block_bot(int(a["user_id"])) or {},
    ("POST", "unblock"): lambda s, a: s.unblock_bot(int(a["user_id"])) or {},
    ("POST", "fail_next"): lambda s, a: s.fail_next(
        a["method"], int(a.get("n", 1)), int(a.get("status", 429)), int(a.get("retry_after", 1)),
        a.get("description")) or {},
    ("POST", "drop_next_response"): lambda s, a: s.drop_next_response(
        a["method"], int(a.get("n", 1))) or {},
    ("POST", "slow"): lambda s, a: s.slow(a["method"], float(a["seconds"])) or {},
    ("POST", "wait_for_call"): lambda s, a: {"calls": [_jsonable(asdict(c)) for c in s.wait_for_call(
        a["method"], int(a.get("count", 1)), float(a.get("timeout", 5.0)))]},
}


# ---------------------------------------------------------------- HTTP plumbing

class _Server(ThreadingHTTPServer):
    """Daemon handler threads (a forgotten stop() never hangs interpreter exit), tracked with
    their connections so stop() can close idle keep-alive sockets and join every thread."""

    daemon_threads = True
    request_queue_size = 128  # a burst of PTB connections must not wait for SYN retries

    def __init__(self, address: tuple[str, int], sim: TelegramSim) -> None:
        super().__init__(address, _Handler)
        self.sim = sim
        self._handlers: dict[socket.socket, threading.Thread] = {}
        self._handlers_lock = threading.Lock()

    def track(self, connection: socket.socket, alive: bool) -> None:
        """Remember open connections so stop() can close idle keep-alive ones."""
        with self._handlers_lock:
            if alive:
                self._handlers[connection] = threading.current_thread()
            else:
                self._handlers.pop(connection, None)

    def close_connections(self, timeout: float = 10.0) -> None:
        """Unblock handler threads waiting for the next keep-alive request, then join them."""
        with self._handlers_lock:
            handlers = list(self._handlers.items())
        for connection, _ in handlers:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for _, thread in handlers:
            thread.join(timeout)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up mid-request is normal (timeouts, dropped responses)."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet: the transcript is the log."""

    def do_GET(self) -> None:
        self._guarded("GET")

    def do_POST(self) -> None:
        self._guarded("POST")

    def _guarded(self, verb: str) -> None:
        """A simulator bug answers 500 with the reason, instead of a silent disconnect."""
        try:
            self._dispatch(verb)
        except OSError:
            self.close_connection = True
        except Exception as exc:  # noqa: BLE001 - top boundary of the server
            traceback.print_exc()
            self._reply(500, {"ok": False, "error_code": 500,
                              "description": f"Internal Server Error: simulator bug: {exc!r}"})

    def _dispatch(self, verb: str) -> None:
        """Route: /__sim/ control, /file/bot<token>/ downloads, /bot<token>/<method>."""
        url = urlsplit(self.path)
        path = unquote(url.path)
        body = self._read_body()
        sim = self.server.sim
        if path.startswith("/__sim/"):
            try:
                payload = json.loads(body) if body else {}
            except ValueError:
                return self._reply(400, {"error": "control API bodies are JSON objects"})
            status, answer = sim.control(verb, path[7:], dict(parse_qsl(url.query)), payload)
            return self._reply(status, answer)
        if path.startswith("/file/bot"):
            token, _, file_path = path[9:].partition("/")
            data = sim.download(token, file_path)
            if data is None:
                return self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
            return self._reply(200, data)
        if not path.startswith("/bot"):
            return self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        token, _, method = path[4:].partition("/")
        self._api(token, method, body, url.query)

    def _api(self, token: str, method: str, body: bytes | None, query: str) -> None:
        """Decode the body, answer, or close without an answer when a drop is scripted."""
        raw: dict[str, Any] = {}
        uploads: dict[str, Upload] = {}
        refused: ApiError | None = None
        if body is None:
            refused = ApiError(413, "Request Entity Too Large")
        else:
            try:
                raw, uploads = parse_body(self.headers.get("Content-Type", ""), body, query)
            except ApiError as exc:
                refused = exc
        status, answer, drop = self.server.sim.handle_api(token, method, raw, uploads, refused)
        if drop:
            self.close_connection = True
            return None
        return self._reply(status, answer)

    def _read_body(self) -> bytes | None:
        """The request body; None when it is over the upload limit (drained, then refused)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            while length > 0 and (chunk := self.rfile.read(min(length, MB))):
                length -= len(chunk)
            return None
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes | None:
        """Chunked bodies, for clients that stream uploads."""
        chunks, total = [], 0
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                break
            total += size
            chunk = self.rfile.read(size)
            self.rfile.readline()
            if total <= MAX_BODY_BYTES:
                chunks.append(chunk)
        return b"".join(chunks) if total <= MAX_BODY_BYTES else None

    def _reply(self, status: int, payload: dict[str, Any] | bytes) -> None:
        """JSON (or file bytes) with an explicit length, so keep-alive works."""
        if isinstance(payload, bytes):
            data, content_type = payload, "application/octet-stream"
        else:
            data, content_type = json.dumps(payload).encode(), "application/json"
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True
