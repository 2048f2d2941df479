"""The checkout desk: pre-checkout queries answered on a thread, loop and connections of their own.

Telegram cancels a checkout whose pre_checkout_query is not answered within 10 s. The bot's
loop also handles every chat's updates and sends every result, and in a burst (a thousand
people paying at once, each payment followed by its successful_payment and a message) its ready
queue is long: an answer waiting its turn there, and for one of the connections shared with
uploads, missed the deadline. So the intake long-polls on the desk's loop (`get_updates`: a busy
bot loop never delays the next getUpdates, and a new query reaches the desk straight from its
batch), and the desk answers on threads of its own (bot.threaded_request: httpx's pool
bookkeeping cost its loop milliseconds of CPU per answer). An answer waits only for the GIL.

The answer is decided without the database (bot.payments.checkout_problem: the invoice against
the price file in force); only a refusal reads the user's language. It is sent for the leader
epoch the intake took the update in, checked at the last moment before it leaves: a deposed
instance answers nothing, and the next leader answers the stored update. What the desk finished
(answered, or found already answered or too late) is reported through `on_done`, so the intake
marks it handled; one it could not finish stays in the store for the next sweep.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from telegram import Bot, PreCheckoutQuery, Update
from telegram.error import BadRequest, TelegramError
from telegram.request import HTTPXRequest

from bot.loop_thread import LoopThread
from bot.payments import checkout_problem
from bot.threaded_request import ThreadedRequest
from config.pricing import Pricing
from config.texts import text
from storage import conversations
from storage.db import Database
from telemetry.metrics import Metrics

log = logging.getLogger(__name__)
T = TypeVar("T")

ANSWERS_ON_WIRE = 16        # answers in flight at once (threads of the desk's own transport)
ENDPOINT = "answerPreCheckoutQuery"
POLL_READ_SLACK_S = 10      # a long poll's read timeout: its own timeout plus this
START_TIMEOUT_S = 30.0


class CheckoutDesk:
    """Answers pre_checkout_queries for the intake, and makes its long polls. `submit` is called
    from the desk's loop (a polled batch) or the bot loop (the sweep)."""

    def __init__(self, token: str, api_url: str, db: Database, metrics: Metrics, pricing: Pricing,
                 holds_epoch: Callable[[int], bool]) -> None:
        self.db, self.metrics, self.pricing = db, metrics, pricing
        self._holds_epoch = holds_epoch
        self._loop_thread = LoopThread("kiebot-checkout")
        self.loop = self._loop_thread.loop
        self.bot = Bot(token, base_url=f"{api_url}/bot", base_file_url=f"{api_url}/file/bot",
                       request=ThreadedRequest(ANSWERS_ON_WIRE, connect_timeout=5, read_timeout=10),
                       get_updates_request=HTTPXRequest(connection_pool_size=1, read_timeout=POLL_READ_SLACK_S))
        self._wire: asyncio.Semaphore | None = None
        self._in_hand: set[int] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        self._loop_thread.start()
        self._loop_thread.run(self._initialize(), START_TIMEOUT_S)

    def stop(self) -> None:
        if self._loop_thread.running:
            try:
                self._loop_thread.run(self.bot.shutdown(), 10)
            except Exception:  # shutting down; nothing left to protect
                log.debug("checkout desk shutdown raised", exc_info=True)
        self._loop_thread.stop()

    def on_loop(self, coro: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
        """`coro` run on the desk's loop, awaitable from another loop (cancelling it there
        cancels it here)."""
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    async def get_updates(self, offset: int | None, timeout: int) -> tuple[Update, ...]:
        """A long poll (on the desk's loop): the intake polls here, so that a busy bot loop never
        delays the next getUpdates, and a new pre-checkout query reaches the desk at once."""
        return await self.bot.get_updates(offset=offset, timeout=timeout, allowed_updates=Update.ALL_TYPES)

    def in_hand(self) -> list[int]:
        """The update_ids taken and not finished (the intake's sweep must not take them again)."""
        with self._lock:
            return list(self._in_hand)

    def submit(self, epoch: int, update_id: int, query: PreCheckoutQuery,
               on_done: Callable[[int], Any]) -> bool:
        """Answer `query` for `epoch`; `on_done(update_id)` runs on the desk's thread once it is
        finished. False when this update is in hand already."""
        with self._lock:
            if update_id in self._in_hand:
                return False
            self._in_hand.add(update_id)
        future = asyncio.run_coroutine_threadsafe(self._answer(epoch, query), self.loop)
        future.add_done_callback(lambda done: self._finished(update_id, done, on_done))
        return True

    async def _initialize(self) -> None:
        self._wire = asyncio.Semaphore(ANSWERS_ON_WIRE)
        await self.bot.initialize()

    def _finished(self, update_id: int, done: concurrent.futures.Future[bool],
                  on_done: Callable[[int], Any]) -> None:
        with self._lock:
            self._in_hand.discard(update_id)
        if done.cancelled():
            return
        if done.exception() is not None:
            log.warning("pre-checkout %s not answered: %s", update_id, type(done.exception()).__name__,
                        extra={"action": "checkout_unanswered"})
            return
        if done.result():
            on_done(update_id)

    async def _answer(self, epoch: int, query: PreCheckoutQuery) -> bool:
        """True when the query is finished with (answered, or Telegram no longer takes an answer);
        False when it is left to the next leader."""
        problem = checkout_problem(self.pricing, query.currency, query.total_amount, query.invoice_payload)
        error_message = None
        if problem is not None:
            lang = await asyncio.to_thread(conversations.user_lang, self.db, query.from_user.id,
                                           query.from_user.language_code)
            log.warning("checkout refused: %s", problem, extra={"action": "checkout_refused"})
            self.metrics.payments.labels("declined").inc()
            error_message = text(lang, problem)
        assert self._wire is not None, "CheckoutDesk used before start()"
        async with self._wire:
            if not self._holds_epoch(epoch):
                return False
            started = time.monotonic()
            try:
                await self.bot.answer_pre_checkout_query(query.id, ok=problem is None, error_message=error_message)
            except BadRequest as exc:
                # Too late (Telegram cancelled the checkout: nothing was charged) or answered
                # already (by an earlier leader): logged, not retried.
                self.metrics.observe_telegram_request(ENDPOINT, type(exc).__name__, time.monotonic() - started)
                log.warning("pre-checkout answer refused: %s", exc, extra={"action": "checkout_late"})
                return True
            except TelegramError as exc:    # network, 5xx, 429: the next sweep hands it over again
                self.metrics.observe_telegram_request(ENDPOINT, type(exc).__name__, time.monotonic() - started)
                raise
            self.metrics.observe_telegram_request(ENDPOINT, "ok", time.monotonic() - started)
        return True
