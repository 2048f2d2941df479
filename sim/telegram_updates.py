"""The Telegram simulator's update feed: what the bot receives, by long polling or by webhook.

Owns: the queue of pending updates and their update_ids, getUpdates long polling (with
Telegram's 409 conflicts), setWebhook/deleteWebhook/getWebhookInfo, and delivering updates to
the webhook in order with retries. It shares the simulator's lock and condition, so waits and
notifications cover both; it never serves HTTP and knows nothing about chats.
"""
from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any

from sim.telegram_spec import ApiError, Upload, bad_request

WEBHOOK_TIMEOUT_S = 5.0
CONFLICT_POLL = ("Conflict: terminated by other getUpdates request; "
                 "make sure that only one bot instance is running")
CONFLICT_WEBHOOK = ("Conflict: can't use getUpdates method while webhook is active; "
                    "use deleteWebhook to delete the webhook first")


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


class UpdateFeed:
    """Pending updates and the two ways out of the queue: getUpdates and the webhook.

    `retry_policy` answers (max attempts, first backoff in seconds) at each failed delivery,
    so a test may change the simulator's limits on a running instance.
    """

    def __init__(self, changed: threading.Condition, stop_event: threading.Event,
                 clock: Callable[[], float], retry_policy: Callable[[], tuple[int, float]]) -> None:
        self._changed = changed
        self._stop_event = stop_event
        self._clock = clock
        self._retry_policy = retry_policy
        self._next_update_id = 1
        self._poll_generation = 0
        self.polls_held = 0
        self.reset()

    def reset(self) -> None:
        """Forget pending updates, deliveries and the webhook; update_ids and the poll generation
        survive. The caller holds the lock (or no other thread runs yet)."""
        self.pending: list[dict[str, Any]] = []
        self.deliveries: list[WebhookDelivery] = []
        self.webhook: _Webhook | None = None

    def queue(self, kind: str, payload: dict[str, Any]) -> int:
        """Append an update for polling or the webhook and wake waiters; caller holds the lock."""
        update_id = self._next_update_id
        self._next_update_id += 1
        self.pending.append({"update_id": update_id, kind: payload})
        self._changed.notify_all()
        return update_id

    # ------------------------------------------------------------ long polling

    def get_updates(self, p: dict[str, Any], up: dict[str, Upload]) -> list[dict[str, Any]]:
        """Long poll; a newer getUpdates ends an older one with 409, as does a webhook."""
        offset, limit = p.get("offset"), min(max(p.get("limit", 100), 1), 100)
        deadline = time.monotonic() + min(max(p.get("timeout", 0), 0), 50)
        allowed = p.get("allowed_updates")
        with self._changed:
            if self.webhook is not None:
                raise ApiError(409, CONFLICT_WEBHOOK)
            self._poll_generation += 1
            generation = self._poll_generation
            self._confirm(offset)
            self.polls_held += 1
            self._changed.notify_all()  # ends an older poll; tells wait_for_polling()
            try:
                return self._hold_poll(generation, deadline, limit, allowed)
            finally:
                self.polls_held -= 1

    def _hold_poll(self, generation: int, deadline: float, limit: int,
                   allowed: list[str] | None) -> list[dict[str, Any]]:
        """Wait (lock released) for updates, a newer poll, a webhook, the deadline or stop."""
        while True:
            if self._poll_generation != generation:
                raise ApiError(409, CONFLICT_POLL)
            if self.webhook is not None:
                raise ApiError(409, CONFLICT_WEBHOOK)
            self.pending = [u for u in self.pending if _allowed(u, allowed)]
            remaining = deadline - time.monotonic()
            if self.pending or remaining <= 0 or self._stop_event.is_set():
                return self.pending[:limit]
            self._changed.wait(remaining)

    def _confirm(self, offset: int | None) -> None:
        """An offset forgets every earlier update; a negative one keeps only the last -offset."""
        if offset is None:
            return
        if offset < 0:
            self.pending = self.pending[offset:]
        else:
            self.pending = [u for u in self.pending if u["update_id"] >= offset]

    # ------------------------------------------------------------ the webhook methods

    def set_webhook(self, p: dict[str, Any], up: dict[str, Upload]) -> bool:
        """Register the webhook; http:// is accepted so tests can listen on loopback."""
        if not p["url"]:
            return self.delete_webhook(p, up)
        if not re.match(r"https?://[^\s/]+", p["url"]):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = p.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise bad_request("secret token contains unallowed characters")
        with self._changed:
            if p.get("drop_pending_updates"):
                self.pending.clear()
            self.webhook = _Webhook(p["url"], secret, p.get("max_connections", 40),
                                    p.get("allowed_updates"))
            self._changed.notify_all()
        return True

    def delete_webhook(self, p: dict[str, Any], up: dict[str, Upload]) -> bool:
        """Back to polling, optionally dropping what is pending."""
        with self._changed:
            if p.get("drop_pending_updates"):
                self.pending.clear()
            self.webhook = None
            self._changed.notify_all()
        return True

    def get_webhook_info(self, p: dict[str, Any], up: dict[str, Upload]) -> dict[str, Any]:
        """WebhookInfo, including the last delivery error Telegram reports."""
        with self._changed:
            hook = self.webhook
            info: dict[str, Any] = {"url": hook.url if hook else "", "has_custom_certificate": False,
                                    "pending_update_count": len(self.pending)}
            if hook:
                info["max_connections"] = hook.max_connections
                if hook.allowed_updates is not None:
                    info["allowed_updates"] = hook.allowed_updates
                if hook.last_error_date is not None:
                    info["last_error_date"] = hook.last_error_date
                    info["last_error_message"] = hook.last_error_message
            return info

    # ------------------------------------------------------------ webhook delivery

    def run_webhook_loop(self) -> None:
        """Deliver pending updates in order, one at a time, retrying with backoff until 2xx."""
        while (job := self._next_delivery()) is not None:
            hook, update = job
            status, error = _post_update(hook, update)
            self._after_delivery(hook, update, status, error)

    def _next_delivery(self) -> tuple[_Webhook, dict[str, Any]] | None:
        """The update at the head of the queue once a webhook is set and backoff allows."""
        with self._changed:
            while not self._stop_event.is_set():
                hook = self.webhook
                if hook is not None:
                    self.pending = [u for u in self.pending if _allowed(u, hook.allowed_updates)]
                if hook is None or not self.pending:
                    self._changed.wait()
                    continue
                delay = hook.retry_at - time.monotonic()
                if delay <= 0:
                    return hook, self.pending[0]
                self._changed.wait(delay)
            return None

    def _after_delivery(self, hook: _Webhook, update: dict[str, Any], status: int | None,
                        error: str | None) -> None:
        """Confirm on 2xx; otherwise back off, and give up after the last attempt."""
        max_attempts, backoff = self._retry_policy()
        with self._changed:
            if self.webhook is not hook:  # deleted, replaced or reset meanwhile
                return
            hook.attempts += 1
            self.deliveries.append(WebhookDelivery(update["update_id"], hook.attempts, status,
                                                   error, self._clock()))
            delivered = status is not None and 200 <= status < 300
            if delivered or hook.attempts >= max_attempts:
                if self.pending and self.pending[0] is update:
                    self.pending.pop(0)
                hook.attempts, hook.retry_at = 0, 0.0
            else:
                hook.retry_at = time.monotonic() + backoff * 2 ** (hook.attempts - 1)
            if not delivered:
                hook.last_error_date = int(time.time())
                hook.last_error_message = error or f"Wrong response from the webhook: {status}"
            self._changed.notify_all()


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
