"""The bridge from actor threads to the bot's asyncio loop, and the one place Telegram errors
become delivery outcomes (`classify_send_error`).

Actors call `TelegramSender` synchronously; it schedules the PTB coroutine on the gateway's loop
with `run_coroutine_threadsafe` and waits with a timeout. A timeout after the request was
written means the outcome is unknown, never "failed". A sender made `for_epoch` sends only
while this instance holds that epoch (checked by FloodControl at dispatch). Every text and
caption is cut to Telegram's limits here, so no message is refused for its length. A group
that became a supergroup (ChatMigrated: nothing was sent) gets the message in its new chat.
In a group, what answers a request replies to it (`group_reply`), and a reply never stops a send:
a request deleted meanwhile means no reply, and so does a group's migration (the request's id
means nothing in the new chat).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message, ReplyParameters
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut

from actors.ports import SendError, SendOutcome, Sent
from bot import media
from bot.flood_control import Crowded, Deposed, background, dispatch_marker, send_epoch
from bot.limits import fit, fit_caption

log = logging.getLogger(__name__)
T = TypeVar("T")
Buttons = list[list[tuple[str, str]]]   # rows of (text, callback_data)

SEND_TIMEOUT_S = 90.0        # from dispatch to answer
MAX_QUEUE_WAIT_S = 300.0     # in FloodControl's queue, before we give up (nothing sent)
_NOT_SENT_MARKERS = ("ConnectError", "Connection refused")
# The transport failures that come before a request is written: it was not sent.
_NOT_SENT_CAUSES = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def keyboard(buttons: Buttons | None) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(t, callback_data=d) for t, d in row] for row in buttons])


def group_reply(chat_id: int, request_message_id: int | None) -> ReplyParameters | None:
    """A reply to the request message in a group or supergroup (negative chat ids), so everyone
    sees whose request a message answers; None in a private chat or with no request message. It
    is sent even when the request was deleted meanwhile (allow_sending_without_reply)."""
    if chat_id >= 0 or request_message_id is None:
        return None
    return ReplyParameters(request_message_id, allow_sending_without_reply=True)


def classify_send_error(exc: BaseException) -> SendError:
    """Map PTB's error hierarchy to what the sender's caller must do."""
    detail = f"{type(exc).__name__}: {exc}"
    match exc:
        case Deposed():
            return SendError(SendOutcome.DEPOSED, detail)
        case Crowded():
            return SendError(SendOutcome.RETRY, detail)
        case RetryAfter():
            wait = exc.retry_after
            seconds = wait.total_seconds() if isinstance(wait, dt.timedelta) else float(wait)
            return SendError(SendOutcome.RETRY_AFTER, detail, retry_after=seconds)
        case Forbidden() | ChatMigrated():      # ChatMigrated: only when the new chat refused too
            return SendError(SendOutcome.UNDELIVERABLE, detail)
        case BadRequest() if "chat not found" in str(exc).lower():
            return SendError(SendOutcome.UNDELIVERABLE, detail)
        case BadRequest():
            return SendError(SendOutcome.REJECTED, detail)
        case NetworkError() if isinstance(exc.__cause__, _NOT_SENT_CAUSES):
            # PTB raises a connect or pool timeout as TimedOut: no connection, nothing written.
            return SendError(SendOutcome.RETRY, detail)
        case TimedOut():
            return SendError(SendOutcome.UNKNOWN, detail)
        case NetworkError() if any(m in str(exc) for m in _NOT_SENT_MARKERS):
            return SendError(SendOutcome.RETRY, detail)
        case NetworkError() | TelegramError():
            return SendError(SendOutcome.UNKNOWN, detail)
        case media.TooLarge():
            return SendError(SendOutcome.REJECTED, detail)
        case httpx.HTTPError():
            return SendError(SendOutcome.REJECTED, f"result could not be downloaded: {detail}")
        case concurrent.futures.TimeoutError() | asyncio.TimeoutError():
            return SendError(SendOutcome.UNKNOWN, "no answer within the send timeout")
    return SendError(SendOutcome.UNKNOWN, detail)


class _Dispatch(threading.Event):
    """The sender's wait: FloodControl calls set() when the request leaves (`sent`); the call
    ending first (refused before leaving, cancelled) only wakes the waiter."""

    sent = False

    def set(self) -> None:
        self.sent = True
        super().set()

    def wake(self) -> None:
        super().set()


class TelegramSender:
    """Blocking Bot API calls for threads other than the bot loop's (bot/presenter.py uses it
    to implement actors.ports.Sender). A file Telegram refuses goes as a link instead, within
    the same call (bot/media.py)."""

    def __init__(self, bot: Bot, loop: asyncio.AbstractEventLoop, timeout: float = SEND_TIMEOUT_S,
                 epoch: int | None = None) -> None:
        self._bot, self._loop, self._timeout, self._epoch = bot, loop, timeout, epoch

    def for_epoch(self, epoch: int) -> TelegramSender:
        """The same sender, whose requests leave only while this instance holds `epoch`."""
        return TelegramSender(self._bot, self._loop, self._timeout, epoch)

    @property
    def bot(self) -> Bot:
        return self._bot

    def call(self, method: str, make: Callable[[], Awaitable[T]]) -> T:
        """Any other Bot API call (payments, admin pages), with the same epoch fence, flood
        control and error classification as the sends below; raises SendError."""
        return self._run(method, make)

    def _run(self, method: str, make: Callable[[], Awaitable[T]], *, in_background: bool = False) -> T:
        """Run a PTB call on the bot loop. Waiting in FloodControl's queue is not the send:
        only once the request is dispatched does a timeout mean "outcome unknown". A call
        `in_background` gives way (RETRY) when Telegram's pace is booked (FloodControl)."""
        dispatched = _Dispatch()
        epoch = self._epoch

        async def call() -> T:
            dispatch_marker.set(dispatched)
            send_epoch.set(epoch)
            background.set(in_background)
            return await make()

        future = asyncio.run_coroutine_threadsafe(call(), self._loop)
        future.add_done_callback(lambda _: dispatched.wake())
        # Blocks without polling: thousands of actors may be waiting here at once.
        if not dispatched.wait(MAX_QUEUE_WAIT_S):
            future.cancel()
            try:
                future.result(5)
            except BaseException:  # noqa: BLE001, S110 - only whether it left matters now
                pass
            outcome = SendOutcome.UNKNOWN if dispatched.sent else SendOutcome.RETRY
            raise SendError(outcome, "waited too long for a sending slot")
        try:
            result = future.result(self._timeout)
        except BaseException as exc:  # noqa: BLE001 - every failure is classified, none escapes raw
            future.cancel()
            raise classify_send_error(exc) from None
        return result

    def send_media(self, chat_id: int, kind: str, source: str, caption: str | None,
                   buttons: Buttons | None, reply: ReplyParameters | None = None) -> Sent:
        msg = self._run(f"send_{kind}", lambda: _to_migrated(chat_id, lambda chat: media.send_or_link(
            self._bot, chat, kind, source, fit_caption(caption), keyboard(buttons), _kept(reply, chat, chat_id))))
        return Sent((msg.message_id,), tuple(filter(None, [media.file_id_of(msg)])))

    def send_album(self, chat_id: int, kind: str, sources: list[str], caption: str | None,
                   reply: ReplyParameters | None = None) -> Sent:
        msgs = self._run("send_album", lambda: _to_migrated(chat_id, lambda chat: media.send_album_or_links(
            self._bot, chat, kind, sources, fit_caption(caption), _kept(reply, chat, chat_id))))
        return Sent(tuple(m.message_id for m in msgs), tuple(filter(None, (media.file_id_of(m) for m in msgs))))

    def download_file(self, file_id: str) -> tuple[bytes, str]:
        return self._run("getFile", lambda: media.download_telegram_file(self._bot, file_id))

    def send_text(self, chat_id: int, text: str, buttons: Buttons | None = None,
                  reply: ReplyParameters | None = None) -> Sent:
        msg: Message = self._run("sendMessage", lambda: _to_migrated(chat_id, lambda chat: self._bot.send_message(
            chat, fit(text), reply_markup=keyboard(buttons), reply_parameters=_kept(reply, chat, chat_id))))
        return Sent((msg.message_id,))

    def delete_message(self, chat_id: int, message_id: int) -> None:
        """Delete one of the bot's messages (Telegram allows it for 48 hours: REJECTED after)."""
        self._run("deleteMessage", lambda: self._bot.delete_message(chat_id, message_id))

    def edit_text(self, chat_id: int, message_id: int, text: str, buttons: Buttons | None = None, *,
                  refresh: bool = False) -> None:
        """`refresh`: the edit only brings up to date what the message already says, so it gives
        way (SendError RETRY, nothing sent) when Telegram's pace is booked by other sends."""
        try:
            self._run("editMessageText", lambda: self._bot.edit_message_text(
                fit(text), chat_id=chat_id, message_id=message_id, reply_markup=keyboard(buttons)),
                in_background=refresh)
        except SendError as exc:
            if "not modified" in exc.detail.lower():
                return          # the same text again: already done
            raise


def _kept(reply: ReplyParameters | None, chat: int, asked: int) -> ReplyParameters | None:
    """The reply for a send to `chat`: none once the group `asked` for moved to a new chat."""
    return reply if chat == asked else None


async def _to_migrated(chat_id: int, send: Callable[[int], Awaitable[T]]) -> T:
    """Send to `chat_id`; if Telegram says the group became a supergroup (nothing was sent),
    send once to the new chat."""
    try:
        return await send(chat_id)
    except ChatMigrated as exc:
        log.info("chat %s migrated to %s; sending there", chat_id, exc.new_chat_id,
                 extra={"action": "chat_migrated"})
        return await send(exc.new_chat_id)
