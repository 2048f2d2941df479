"""FloodControl: Telegram's sending limits, built into the one path every bot request takes.

A PTB `BaseRateLimiter`, so handlers' replies and the actors' deliveries share it. Per private
chat one message per CHAT_INTERVAL_S after a burst of up to CHAT_BURST (Telegram allows short
bursts: a reply and its follow-up, a result and its buttons, go out together), per group one per
GROUP_INTERVAL_S (20/min) with no burst, and across the bot one per GLOBAL_INTERVAL_S (~30/s),
evenly spaced. A chat's pace is a token bucket kept as one time per chat (its "theoretical
arrival time", as in GCRA), so a busy chat costs one float. A 429 is
obeyed: a short `retry_after` is waited out and the request retried (it was not executed); a
long one is raised to the caller, who reschedules. A request is marked "dispatched" (see
`dispatch_marker`) only when it really leaves, so a caller that gives up before then knows
nothing was sent. An album of N items counts as N messages toward both limits.

The bot-wide pace is kept twice: a slot is booked before a request waits for one of the
MAX_ON_WIRE wire slots, and checked again at dispatch, where the chat's bucket is charged too.
So requests that waited for the wire behind slow uploads do not leave together once it frees.

A request marked `background` (a progress message's periodic refresh) is sent only while the
global pace is booked less than BACKGROUND_MAX_BACKLOG_S ahead and it need not wait at dispatch;
otherwise it raises `Crowded` and nothing is sent. So with hundreds of jobs counting their
progress, a result or a reply waits at most that long behind their edits, instead of behind all
of them.

Fencing of sends: a request made for a leader epoch (`send_epoch`, set by the actors' sender
and by the intake's workers) is checked at dispatch, the last moment before it leaves; if this
instance no longer holds that epoch it raises `Deposed` and nothing is sent. A request already
on the wire is never cancelled by us: `drain` lets shutdown wait for it.
"""
from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import enum
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

CHAT_INTERVAL_S = 1.05
CHAT_BURST = 3              # messages a private chat may get at once, its bucket full
GROUP_INTERVAL_S = 3.05
GLOBAL_INTERVAL_S = 1 / 29
MAX_INLINE_WAIT_S = 5.0     # longer waits go back to the caller as RetryAfter
BACKGROUND_MAX_BACKLOG_S = 1.0  # a background request finding the global pace booked further is skipped
DISPATCH_TOLERANCE_S = 3 * GLOBAL_INTERVAL_S  # how early a request may leave against the pace at dispatch
MAX_RETRIES = 3
# Requests sent and not yet answered; the rest wait here, not in httpx. httpcore checks every
# pooled connection for every request, so the loop's CPU per send grows with this number; 16 is
# ~50 messages/s at 300 ms per answer, well above Telegram's 30/s.
MAX_ON_WIRE = 16
UNPACED = frozenset({"sendChatAction", "getFile", "answerCallbackQuery", "deleteMessage"})  # not messages
# A button's spinner turns until its query is answered: those answers have wire slots of their
# own, so a crowd of uploads on the wire never holds them up. (Pre-checkout answers have a loop and
# threads of their own, and do not pass here: bot.checkout_desk.)
URGENT = frozenset({"answerCallbackQuery"})
MAX_URGENT_ON_WIRE = 8

# Set by the sender bridge for the request it runs; FloodControl sets the Event when it sends.
dispatch_marker: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "dispatch_marker", default=None)
# The leader epoch a request is sent for; None: not on behalf of leadership.
send_epoch: contextvars.ContextVar[int | None] = contextvars.ContextVar("send_epoch", default=None)
# The request only refreshes what the user already sees: it gives way when Telegram's pace is booked.
background: contextvars.ContextVar[bool] = contextvars.ContextVar("background", default=False)

class Leave(enum.Enum):
    """Why a handler leaves its update in the store instead of marking it handled."""

    DEPOSED = "deposed"          # this term ended (a send or a fenced write refused): the next
                                 # leader handles the update, and says what this one could not
    AGAIN_LATER = "again_later"  # it could not finish for now (Telegram asked it to wait before
                                 # a send it must make): its chat's lane handles it again, after
                                 # a wait, before the chat's later updates (bot_gateway)


@dataclass(frozen=True)
class Leaving:
    reason: Leave
    why: str
    wait_s: float = 0.0          # AGAIN_LATER: how long Telegram asked to wait (0: unknown)
    fate_unknown: bool = False   # AGAIN_LATER: the failed send may have been made all the same


# Set by the intake for the update a handler works on; a handler (or FloodControl, refusing a
# send for an ended term) appends, and the update stays in the store. What the handler did so far
# must be idempotent: the next handling finds it done and goes on from there.
leaving: contextvars.ContextVar[list[Leaving] | None] = contextvars.ContextVar("leaving", default=None)


# The steps (named by the handler) that earlier handlings of the same update finished in this
# term: a handler left for later and handled again from the start skips what already went out
# (e.g. /buy's first invoices before a long 429 on the third).
steps_done: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("steps_done", default=None)


def step_done(step: str) -> bool:
    """Whether an earlier handling of the update being handled finished `step`."""
    done = steps_done.get()
    return done is not None and step in done


def finish_step(step: str) -> None:
    """`step` of the update being handled is done: a handling again after a wait skips it."""
    done = steps_done.get()
    if done is not None:
        done.add(step)


def leave_update(reason: Leave, why: str, *, wait_s: float = 0.0, fate_unknown: bool = False) -> None:
    """The update being handled stays in the store, for `reason` (see Leave)."""
    left = leaving.get()
    if left is not None:
        left.append(Leaving(reason, why, wait_s, fate_unknown))


class Deposed(Exception):
    """The request was made for an epoch this instance no longer holds: it was not sent."""

    def __init__(self, epoch: int) -> None:
        super().__init__(f"not sent: epoch {epoch} is no longer held by this instance")
        self.epoch = epoch


class Crowded(Exception):
    """A background request found the global pace booked too far ahead: it was not sent."""

    def __init__(self, backlog_s: float) -> None:
        super().__init__(f"not sent: Telegram's pace is booked {backlog_s:.1f}s ahead")
        self.backlog_s = backlog_s


def _seconds(value: Any) -> float:
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


class FloodControl(BaseRateLimiter[int]):
    def __init__(self, on_wait: Callable[[str, float], None] | None = None,
                 on_queue: Callable[[int], None] | None = None,
                 on_request: Callable[[str, str, float], None] | None = None, pacing: bool = True,
                 holds_epoch: Callable[[int], bool] = lambda epoch: True) -> None:
        # pacing=False (KIEBOT_CLIENT_PACING=off): no spacing of sends, for benchmarks against a
        # simulator without limits; a 429's retry_after is still obeyed.
        self._pacing = pacing
        self._holds_epoch = holds_epoch
        self._on_wire = 0
        self._wire_idle = threading.Condition()
        self._chat_next: dict[str | int, float] = {}
        self._chat_locks: dict[str | int, asyncio.Lock] = {}
        self._global_next = 0.0
        self._global_lock: asyncio.Lock | None = None
        self._dispatch_next = 0.0
        self._dispatch_lock: asyncio.Lock | None = None
        self._wire: asyncio.Semaphore | None = None
        self._urgent_wire: asyncio.Semaphore | None = None
        self._queued = 0
        self._on_wait = on_wait or (lambda reason, seconds: None)
        self._on_queue = on_queue or (lambda depth: None)
        self._on_request = on_request or (lambda endpoint, result, seconds: None)

    async def initialize(self) -> None:
        self._global_lock = asyncio.Lock()
        self._dispatch_lock = asyncio.Lock()
        # Thousands of results at once (a leader adopting a backlog) would otherwise all reach
        # httpcore's pool, whose bookkeeping scans every queued request on every change.
        self._wire = asyncio.Semaphore(MAX_ON_WIRE)
        self._urgent_wire = asyncio.Semaphore(MAX_URGENT_ON_WIRE)

    async def shutdown(self) -> None:
        self._chat_locks.clear()

    async def process_request(self, callback: Callable[..., Coroutine[Any, Any, Any]], args: Any,
                              kwargs: dict[str, Any], endpoint: str, data: dict[str, Any],
                              rate_limit_args: int | None) -> Any:
        chat = data.get("chat_id")
        if chat is None or endpoint in UNPACED:   # getUpdates, answerCallbackQuery, chat actions, …
            return await self._send(endpoint, callback, args, kwargs)
        key: str | int = chat if isinstance(chat, (int, str)) else str(chat)
        weight = max(1, len(data.get("media") or ())) if endpoint == "sendMediaGroup" else 1
        lock = self._chat_locks.setdefault(key, asyncio.Lock())
        self._queued += 1
        self._on_queue(self._queued)
        try:
            async with lock:
                for attempt in range(MAX_RETRIES + 1):
                    await self._wait_for_slot(key, weight)
                    try:
                        return await self._send(endpoint, callback, args, kwargs, paced=(key, weight))
                    except RetryAfter as exc:
                        wait = _seconds(exc.retry_after)
                        interval, burst = self._pace(key)
                        # The bucket stays empty until then: one message may go after `wait`.
                        self._chat_next[key] = time.monotonic() + wait + (burst - 1) * interval
                        self._on_wait("429", wait)
                        if wait > MAX_INLINE_WAIT_S or attempt == MAX_RETRIES:
                            raise
            raise AssertionError("unreachable")
        except Crowded:
            self._on_request(endpoint, "crowded", 0.0)
            raise
        finally:
            self._queued -= 1
            self._on_queue(self._queued)

    def _pace(self, key: str | int) -> tuple[float, int]:
        """The chat's interval per message and its burst."""
        if not self._pacing:
            return 0.0, 1
        return (GROUP_INTERVAL_S, 1) if _is_group(key) else (CHAT_INTERVAL_S, CHAT_BURST)

    async def _wait_for_slot(self, key: str | int, weight: int = 1) -> None:
        """Wait until the chat's bucket holds `weight` messages (its whole burst, for an album
        larger than that), then book `weight` global slots and wait for them. The bucket is
        charged at dispatch (`_dispatch_pace`), an album of ten running it into debt."""
        interval, burst = self._pace(key)
        # _chat_next[key] is when the chat's bucket is full again; it holds `burst` messages.
        full_at = self._chat_next.get(key, 0.0)
        wait = full_at - (burst - min(weight, burst)) * interval - time.monotonic()
        if wait > MAX_INLINE_WAIT_S:
            raise RetryAfter(int(wait) + 1)
        if wait > 0:
            self._on_wait("chat", wait)
            await asyncio.sleep(wait)
        assert self._global_lock is not None, "FloodControl used before initialize()"
        if not self._pacing:
            return
        async with self._global_lock:
            now = time.monotonic()
            slot = max(now, self._global_next)
            if background.get() and slot - now > BACKGROUND_MAX_BACKLOG_S:
                raise Crowded(slot - now)
            self._global_next = slot + GLOBAL_INTERVAL_S * weight
        if slot > now:
            await asyncio.sleep(slot - now)

    async def _dispatch_pace(self, endpoint: str, key: str | int, weight: int) -> None:
        """At dispatch, with a wire slot: the global pace again (requests that waited for the wire
        behind slow uploads would otherwise leave together once it frees), then the epoch check,
        then the chat's bucket is charged, from when the request really leaves. A background
        request that would wait here gives way (Crowded): what queued behind it goes first."""
        assert self._dispatch_lock is not None, "FloodControl used before initialize()"
        async with self._dispatch_lock:
            wait = self._dispatch_next - DISPATCH_TOLERANCE_S - time.monotonic()
            if wait > 0:
                if background.get():
                    raise Crowded(wait)
                self._on_wait("global", wait)
                await asyncio.sleep(wait)
            self._refuse_if_deposed(endpoint)
            now = time.monotonic()
            self._dispatch_next = max(self._dispatch_next, now) + GLOBAL_INTERVAL_S * weight
        interval, _ = self._pace(key)
        self._chat_next[key] = max(self._chat_next.get(key, 0.0), now) + interval * weight

    def _refuse_if_deposed(self, endpoint: str) -> None:
        """The last moment before a request leaves: not for an epoch this instance has lost."""
        epoch = send_epoch.get()
        if epoch is not None and not self._holds_epoch(epoch):
            self._on_request(endpoint, "deposed", 0.0)
            leave_update(Leave.DEPOSED, f"{endpoint} refused: epoch {epoch} ended")
            raise Deposed(epoch)

    async def _send(self, endpoint: str, callback: Callable[..., Coroutine[Any, Any, Any]], args: Any,
                    kwargs: dict[str, Any], paced: tuple[str | int, int] | None = None) -> Any:
        """Send at once, or (`paced`: the chat and the weight) once the dispatch pace allows."""
        wire = self._urgent_wire if endpoint in URGENT else self._wire
        assert wire is not None, "FloodControl used before initialize()"
        async with wire:
            if paced is not None and self._pacing:
                await self._dispatch_pace(endpoint, *paced)
            else:
                self._refuse_if_deposed(endpoint)
            marker = dispatch_marker.get()
            if marker is not None:
                marker.set()
            started = time.monotonic()
            # Shielded: cancelling the caller (our own shutdown, a sender's timeout) must not
            # abort a request Telegram may already be executing; `drain` waits for it.
            request = asyncio.ensure_future(callback(*args, **kwargs))
            self._wire_change(+1)
            request.add_done_callback(lambda _: self._wire_change(-1))
            try:
                result = await asyncio.shield(request)
            except Exception as exc:
                self._on_request(endpoint, type(exc).__name__, time.monotonic() - started)
                raise
            self._on_request(endpoint, "ok", time.monotonic() - started)
            return result

    def _wire_change(self, delta: int) -> None:
        with self._wire_idle:
            self._on_wire += delta
            if self._on_wire == 0:
                self._wire_idle.notify_all()

    def drain(self, timeout: float) -> bool:
        """Block (from another thread) until no request is on the wire, up to `timeout` s.
        True when none is left; requests not yet dispatched are not waited for."""
        with self._wire_idle:
            return self._wire_idle.wait_for(lambda: self._on_wire == 0, timeout)


def _is_group(key: str | int) -> bool:
    return (isinstance(key, int) and key < 0) or (isinstance(key, str) and (key.startswith(("@", "-"))))
