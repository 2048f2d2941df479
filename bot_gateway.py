"""bot_gateway: python-telegram-bot on its own thread and asyncio loop.

Owns the PTB Application (base URL from TELEGRAM_API_URL), the durable intake and the sending
bridge for the actors. Intake: every update is written to Postgres (unique update_id) before
it is confirmed to Telegram, then processed from there and marked processed, fenced by the
epoch, only after its handler finished. Long polling runs only while this instance leads, on
the checkout desk's loop (never delayed by handlers busy on the bot loop); in webhook mode
http_gateway stores updates and the leader processes them the same way.

A sweep of the store (every INBOX_SWEEP_S, and at once when woken) hands each update to its
chat's lane (bot.chat_lanes): one chat's updates are handled in order, different chats at
once, so one busy chat cannot stall the others. A pre_checkout_query (no chat; Telegram
wants its answer within 10 s) goes to the checkout desk (bot.checkout_desk), which answers it on
threads of its own, straight from the polled batch. An update that cannot be
decoded or handled is set aside as failed with a short reason and never blocks the ones after it.
"""
from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from telegram import BotCommand, PreCheckoutQuery, Update  # noqa: TID251 - the gateway is PTB's home
from telegram.error import Conflict, NetworkError, TelegramError, TimedOut  # noqa: TID251 - the gateway is PTB's home
from telegram.ext import Application, ApplicationBuilder  # noqa: TID251 - the gateway is PTB's home
from telegram.request import HTTPXRequest  # noqa: TID251 - the gateway is PTB's home

from bot import dialogue, flood_control, media
from bot.chat_lanes import ChatLanes
from bot.checkout_desk import CheckoutDesk
from bot.context import Deps
from bot.flood_control import MAX_ON_WIRE, MAX_URGENT_ON_WIRE, FloodControl
from bot.handled_marks import HandledMarks
from bot.loop_thread import LoopThread
from bot.presenter import Presenter
from bot.sender import TelegramSender
from config.catalogue import Catalogue
from config.pricing import Pricing, default_pricing
from config.settings import Settings
from config.texts import LANGS, text
from storage import updates as update_inbox
from storage.db import Database, DatabaseUnavailable
from telemetry.metrics import Metrics

log = logging.getLogger(__name__)
T = TypeVar("T")

LONG_POLL_TIMEOUT_S = 10
POLL_ERROR_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)
INBOX_SWEEP_S = 1.0
# Waits before an update left for later (Leave.AGAIN_LATER) is handled again, at least what
# Telegram asked; one more time left, and it is set aside.
AGAIN_WAITS_S = (1.0, 2.0, 5.0, 10.0, 30.0)
SWEEP_BATCH = 100            # stored updates read per query
FAILURE_TEXT_MAX = 300       # characters of an update's failure reason kept
START_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 25.0      # below the default delivery grace period (30 s)
INTAKE_DRAIN_S = 5.0        # a stopping intake lets handlers with a reply on the wire finish
# Threads for the intake's own storage calls (store a batch, sweep, mark handled), so they never
# queue behind the handlers' storage calls on the loop's default executor.
INTAKE_STORAGE_THREADS = 2
# The command menu Telegram shows, described per language (config/texts cmd_<name>).
BOT_COMMANDS = ("start", "imagine", "models", "history", "balance", "buy", "cancel", "lang", "help")


class FencedOut(Exception):
    """This instance's epoch is no longer current: stop taking updates."""


@dataclass
class Again:
    """How often an update was left for later in this term, and how many of those left a send
    of unknown fate (said, perhaps, already)."""

    tries: int = 0
    unknown: int = 0
    steps: set[str] = field(default_factory=set)     # flood_control.finish_step: done already


class LeftTooOften(Exception):
    """An update set aside after being left for later too often (its reason for the store)."""

    def __init__(self, record: Again, why: str) -> None:
        reason = ("a send of unknown fate would be repeated a second time" if record.unknown > 1
                  else f"left for later {record.tries} times")
        super().__init__(f"{reason}; last: {why}")


class BotGateway:
    def __init__(self, settings: Settings, db: Database, catalogue: Catalogue, metrics: Metrics,
                 notify_job: Callable[[int], None], cancel_job: Callable[[int], None] = lambda job_id: None,
                 holds_epoch: Callable[[int], bool] = lambda epoch: True, *, pricing: Pricing | None = None) -> None:
        self.settings, self.db, self.metrics, self.catalogue = settings, db, metrics, catalogue
        self._holds_epoch = holds_epoch
        self._loop_thread = LoopThread("kiebot-telegram")
        self.loop = self._loop_thread.loop
        self.app = self._build_application()
        dialogue.install(self.app, Deps(db, catalogue, metrics, notify_job, cancel_job,
                                        pricing=pricing if pricing is not None else default_pricing(),
                                        max_active_jobs=settings.max_active_jobs, admin_ids=settings.admin_ids,
                                        queue_length=settings.queue_length))
        # Result downloads go only to KIE's result hosts and to these (the simulators serve results there).
        media.allow_result_hosts(settings.kie_api_url, settings.kie_upload_url)
        self.sender = TelegramSender(self.app.bot, self.loop)
        self.checkout = CheckoutDesk(settings.telegram_bot_token, settings.telegram_api_url, db, metrics,
                                     pricing if pricing is not None else default_pricing(), holds_epoch)
        self._intake: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._storage = ThreadPoolExecutor(INTAKE_STORAGE_THREADS, thread_name_prefix="kiebot-intake")

    def presenter_for(self, epoch: int) -> Presenter:
        """The actors' Sender for one leader epoch: nothing it sends leaves once that epoch ends."""
        return Presenter(self.sender.for_epoch(epoch), self.catalogue)

    def _build_application(self) -> Application[Any, Any, Any, Any, Any, Any]:
        base = self.settings.telegram_api_url
        self.flood_control = FloodControl(on_wait=self._observe_wait, on_queue=self.metrics.telegram_queue.set,
                                          on_request=self.metrics.observe_telegram_request,
                                          pacing=self.settings.client_pacing, holds_epoch=self._holds_epoch)
        return (ApplicationBuilder()
                .token(self.settings.telegram_bot_token)
                .base_url(f"{base}/bot")
                .base_file_url(f"{base}/file/bot")
                .updater(None)
                .rate_limiter(self.flood_control)
                # FloodControl keeps MAX_ON_WIRE requests in flight and MAX_URGENT_ON_WIRE answers;
                # file downloads bypass it.
                .request(HTTPXRequest(connection_pool_size=2 * MAX_ON_WIRE + MAX_URGENT_ON_WIRE,
                                      connect_timeout=5, read_timeout=30,
                                      write_timeout=30, media_write_timeout=60))
                .build())

    def _observe_wait(self, reason: str, seconds: float) -> None:
        self.metrics.telegram_waits.labels(reason).inc(seconds)
        if reason == "429":
            self.metrics.telegram_429.inc()

    # --- lifecycle (called from other threads) ----------------------------------------------
    def start(self) -> None:
        self._loop_thread.start()
        self._loop_thread.run(self.app.initialize(), START_TIMEOUT_S)
        self.checkout.start()

    def stop(self) -> None:
        if self._loop_thread.running:
            self.set_epoch(None)
            # Never abort a request Telegram may be executing: wait for it (bounded), so its
            # sender learns the outcome and records it.
            if not self.flood_control.drain(DRAIN_TIMEOUT_S):
                log.warning("stopping with Telegram requests still on the wire", extra={"action": "drain_timeout"})
            try:
                self._loop_thread.run(self.app.shutdown(), 10)
            except Exception:  # shutting down; nothing left to protect
                log.debug("PTB shutdown raised", exc_info=True)
        self._loop_thread.stop()
        self._storage.shutdown(wait=False)
        self.checkout.stop()

    def set_epoch(self, epoch: int | None) -> None:
        """Leadership listener: start intake for `epoch`, or stop it (None). Thread-safe."""
        async def switch() -> None:
            if self._intake is not None:
                self._intake.cancel()
                try:
                    await self._intake
                except (asyncio.CancelledError, Exception):  # noqa: BLE001, S110 - it is being replaced
                    pass
                self._intake = None
            if epoch is not None:
                self._intake = asyncio.create_task(self._run_intake(epoch), name=f"intake-{epoch}")

        if self._loop_thread.running:
            self._loop_thread.run(switch(), 15)

    def wake(self) -> None:
        """Stored updates are waiting: sweep the store now instead of at the next tick. Thread-safe."""
        self.loop.call_soon_threadsafe(self._wake.set)

    # --- intake (on the bot loop; the long poll on the checkout desk's) -------------------------
    async def _run_intake(self, epoch: int) -> None:
        """Intake for one epoch; an unexpected error is logged and the intake starts over. The
        chat lanes live as long as the epoch, so a restart does not cut other chats short."""
        log.info("telegram intake started (%s)", self.settings.bot_mode,
                 extra={"action": "intake_start", "epoch": epoch})
        marks = HandledMarks(functools.partial(self._write_marks, epoch))
        again: dict[int, Again] = {}
        lanes: ChatLanes[Update] = ChatLanes(functools.partial(self._handle_stored, epoch, marks, again))
        try:
            while True:
                try:
                    await self._intake_once(epoch, lanes, marks)
                except (asyncio.CancelledError, FencedOut):
                    raise
                except Exception:  # the intake boundary: log, count, start over
                    log.exception("telegram intake failed; restarting", extra={"action": "intake_error"})
                    self.metrics.telegram_updates.labels("intake_error").inc()
                    await asyncio.sleep(POLL_ERROR_BACKOFF_S[-1])
        except FencedOut:
            log.warning("epoch %s is stale; intake stops", epoch, extra={"action": "intake_fenced"})
        finally:
            await lanes.close(INTAKE_DRAIN_S)
            await self._last_marks(marks)
            log.info("telegram intake stopped", extra={"action": "intake_stop", "epoch": epoch})

    async def _intake_once(self, epoch: int, lanes: ChatLanes[Update], marks: HandledMarks) -> None:
        """Register, then sweep the store, poll Telegram (polling mode), write the handled marks
        and watch the lanes, all at once: the sweep never waits for getUpdates to return. The
        first error ends them all."""
        await self._register_intake()
        parts = [self._sweep(epoch, lanes, marks), self._watch_lanes(lanes), marks.run()]
        if self.settings.bot_mode == "polling":
            parts.append(self._poll(epoch, marks))
        tasks = [asyncio.create_task(part) for part in parts]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _register_intake(self) -> None:
        """Tell Telegram where updates go: our webhook (with its secret), or nowhere (polling),
        and which commands to offer in each language. Retried until it works; pending updates
        are never dropped."""
        failures = 0
        while True:
            try:
                if self.settings.bot_mode == "webhook":
                    await self.app.bot.set_webhook(f"{self.settings.public_url}/telegram/webhook",
                                                   secret_token=self.settings.telegram_webhook_secret,
                                                   allowed_updates=Update.ALL_TYPES)
                else:
                    await self.app.bot.delete_webhook(drop_pending_updates=False)
                await self._set_commands()
                return
            except TelegramError as exc:
                failures += 1
                log.warning("could not register the intake: %s", type(exc).__name__,
                            extra={"action": "intake_register"})
                await asyncio.sleep(POLL_ERROR_BACKOFF_S[min(failures, len(POLL_ERROR_BACKOFF_S)) - 1])

    async def _set_commands(self) -> None:
        """setMyCommands: English for everyone (no language code), and each other language for
        the users whose Telegram speaks it."""
        for lang in LANGS:
            commands = [BotCommand(name, text(lang, f"cmd_{name}")) for name in BOT_COMMANDS]
            await self.app.bot.set_my_commands(commands, language_code=None if lang == "en" else lang)

    async def _poll(self, epoch: int, marks: HandledMarks) -> None:
        """Long polling, on the checkout desk's loop (see `_poll_batches`)."""
        await self.checkout.on_loop(self._poll_batches(epoch, marks))

    async def _poll_batches(self, epoch: int, marks: HandledMarks) -> None:
        """Store each batch, then wake the sweep; the next getUpdates confirms it. It runs on the
        desk's loop, not the bot loop, so that handlers busy on the bot loop never delay the next
        getUpdates; a new pre-checkout query goes to the desk at once (Telegram cancels the
        checkout after 10 s), without waiting for the sweep to read it back."""
        offset: int | None = None
        failures = 0
        while True:
            try:
                batch = await self.checkout.get_updates(offset, LONG_POLL_TIMEOUT_S)
                failures = 0
            except (Conflict, TimedOut, NetworkError) as exc:
                failures += 1
                log.warning("getUpdates failed: %s", type(exc).__name__, extra={"action": "poll_error"})
                await asyncio.sleep(POLL_ERROR_BACKOFF_S[min(failures, len(POLL_ERROR_BACKOFF_S)) - 1])
                continue
            if not batch:
                continue
            new = await self._in_storage(self._store_batch, [(u.update_id, u.to_dict()) for u in batch])
            if new is None:
                # Database gone: confirm nothing; the intake restarts (or the leader steps down).
                raise DatabaseUnavailable("could not store a polled batch")
            # The next getUpdates confirms this batch: only now that every update is stored.
            offset = batch[-1].update_id + 1
            for update in batch:
                if update.pre_checkout_query is not None and update.update_id in new:
                    self._to_checkout(epoch, marks, update.update_id, update.pre_checkout_query)
            self.wake()

    def _store_batch(self, batch: list[tuple[int, dict[str, Any]]]) -> set[int] | None:
        """Store one getUpdates batch in one transaction: the update_ids that were new; None
        when the database is gone."""
        try:
            # Only a leader polls, and it wakes its own intake: no NOTIFY.
            new = update_inbox.store_updates(self.db, batch, self.settings.instance_id, notify=False)
        except DatabaseUnavailable as exc:
            log.error("cannot store %d updates: %s", len(batch), exc, extra={"action": "update_store_failed"})
            return None
        self.metrics.telegram_updates.labels("stored").inc(len(new))
        if len(batch) > len(new):
            self.metrics.telegram_updates.labels("duplicate").inc(len(batch) - len(new))
            self.metrics.duplicates_suppressed.labels("update").inc(len(batch) - len(new))
        return new

    async def _sweep(self, epoch: int, lanes: ChatLanes[Update], marks: HandledMarks) -> None:
        """Hand stored updates to their chat lanes every INBOX_SWEEP_S, and at once on a wake."""
        while True:
            await self._process_stored(epoch, lanes, marks)
            try:
                await asyncio.wait_for(self._wake.wait(), INBOX_SWEEP_S)
            except TimeoutError:
                pass
            self._wake.clear()

    async def _process_stored(self, epoch: int, lanes: ChatLanes[Update], marks: HandledMarks) -> None:
        """Queue every stored, unprocessed update that is not in flight (nor handled with its
        mark still to be written), in update_id order, on its chat's lane. One that cannot be
        decoded is set aside as failed here."""
        passed: list[int] = []      # refused by a chat's full lane: left for a later sweep,
        full: set[Hashable] = set()  # with every later update of that chat (their order holds)
        while lanes.has_room():
            taken = lanes.in_flight() + marks.unwritten() + self.checkout.in_hand() + passed
            rows = await self._in_storage(update_inbox.unprocessed, self.db, SWEEP_BATCH, taken)
            for update_id, body in rows:
                try:
                    update = Update.de_json(body, self.app.bot)
                    key = lane_key(update)
                except Exception as exc:  # noqa: BLE001 - PTB raises KeyError, TypeError, ...: all mean "undecodable"
                    await self._set_aside(epoch, update_id, exc)
                    continue
                if update.pre_checkout_query is not None:
                    self._to_checkout(epoch, marks, update_id, update.pre_checkout_query)
                elif key in full or not lanes.submit(key, update_id, update):
                    full.add(key)               # a flooding chat must not hide the others' updates
                    passed.append(update_id)
            if len(rows) < SWEEP_BATCH:
                return

    def _to_checkout(self, epoch: int, marks: HandledMarks, update_id: int, query: PreCheckoutQuery) -> None:
        """Hand a pre-checkout query to the desk; once it is answered, it is marked handled (unless
        the bot loop has stopped meanwhile: the next leader answers it again, and Telegram's
        refusal of a second answer finishes it)."""
        def note(done: int) -> None:
            try:
                self.loop.call_soon_threadsafe(marks.note, done)
            except RuntimeError:        # the bot loop is closed: this term is over
                log.info("pre-checkout %s answered as the intake stopped; left unmarked", done,
                         extra={"action": "checkout_unmarked"})

        self.checkout.submit(epoch, update_id, query, on_done=note)

    async def _watch_lanes(self, lanes: ChatLanes[Update]) -> None:
        """Raise the errors lanes let through, FencedOut first (it stops the intake); the others
        restart it once, however many lanes met them."""
        errors = [await lanes.errors.get()]
        while not lanes.errors.empty():
            errors.append(lanes.errors.get_nowait())
        raise next((e for e in errors if isinstance(e, FencedOut)), errors[0])

    async def _handle_stored(self, epoch: int, marks: HandledMarks, again: dict[int, Again], update_id: int,
                             update: Update) -> float | None:
        """One update, in its chat's lane: handle it, then note it handled (written processed,
        fenced, with the next batch of marks). Anything that escapes PTB sets the update aside
        as failed, so the chat's next update follows. An update its handler left for later is
        handled again after the returned wait (see `_again_in`)."""
        # Every request the handler makes is sent for this epoch, or not at all (see FloodControl).
        flood_control.send_epoch.set(epoch)
        left: list[flood_control.Leaving] = []
        flood_control.leaving.set(left)
        steps = again[update_id].steps if update_id in again else set()
        flood_control.steps_done.set(steps)
        try:
            await self.app.process_update(update)
        except Exception as exc:  # noqa: BLE001 - one bad update must not stop the ones after it
            again.pop(update_id, None)
            await self._set_aside(epoch, update_id, exc)
            return None
        if left:
            # Marking it processed would leave it unanswered: deposed while handling it, the
            # next leader handles it (and says what this term could not); or it must wait.
            log.info("update %s left in the store (%s): %s", update_id, left[0].reason.value, left[0].why,
                     extra={"action": "update_left"})
            return await self._again_in(epoch, again, update_id, left, steps)
        again.pop(update_id, None)
        marks.note(update_id)
        return None

    async def _again_in(self, epoch: int, again: dict[int, Again], update_id: int,
                        left: list[flood_control.Leaving], steps: set[str]) -> float | None:
        """When to handle a left update again in its lane (before the chat's later updates, so a
        replayed /lang cannot undo a later one): after what Telegram asked, and at least the next
        of AGAIN_WAITS_S. None: not here (deposed: the next leader handles it), or never (set
        aside: left too often, or a send of unknown fate would be repeated a second time)."""
        if any(leaving.reason is flood_control.Leave.DEPOSED for leaving in left):
            again.pop(update_id, None)
            return None
        record = again.setdefault(update_id, Again())
        record.steps = steps
        record.tries += 1
        record.unknown += sum(leaving.fate_unknown for leaving in left)
        if record.tries > len(AGAIN_WAITS_S) or record.unknown > 1:
            again.pop(update_id)
            await self._set_aside(epoch, update_id, LeftTooOften(record, left[-1].why))
            return None
        return max(AGAIN_WAITS_S[record.tries - 1], *(leaving.wait_s for leaving in left))

    async def _write_marks(self, epoch: int, update_ids: list[int]) -> None:
        """Mark a batch of handled updates processed; FencedOut when the epoch has ended."""
        if not await self._in_storage(update_inbox.mark_processed, self.db, update_ids, epoch):
            raise FencedOut(epoch)
        self.metrics.telegram_updates.labels("processed").inc(len(update_ids))

    async def _last_marks(self, marks: HandledMarks) -> None:
        """A stopping intake writes the marks still noted; those it cannot write are handled
        again by the next leader."""
        try:
            await marks.flush()
        except (FencedOut, DatabaseUnavailable) as exc:
            log.warning("%d handled updates left unmarked: %s", len(marks.unwritten()), type(exc).__name__,
                        extra={"action": "marks_left"})

    async def _in_storage(self, call: Callable[..., T], *args: Any) -> T:
        """Run an intake storage call on the intake's own threads, from whichever loop awaits it
        (the bot loop's sweep, or the long poll on the checkout desk's loop)."""
        return await asyncio.get_running_loop().run_in_executor(self._storage, call, *args)

    async def _set_aside(self, epoch: int, update_id: int, exc: Exception) -> None:
        """Mark an update failed (fenced), count it and log it once."""
        failure = self._failure_text(exc)
        if not await self._in_storage(update_inbox.mark_failed, self.db, update_id, epoch, failure):
            raise FencedOut(epoch)
        self.metrics.telegram_updates.labels("failed").inc()
        log.error("update %s set aside: %s", update_id, failure, extra={"action": "update_failed"})

    def _failure_text(self, exc: BaseException) -> str:
        """A short reason for the store and the log, with every configured secret masked."""
        text = f"{type(exc).__name__}: {exc}"
        for secret in (self.settings.telegram_bot_token, self.settings.kie_api_key,
                       self.settings.telegram_webhook_secret, self.settings.kie_webhook_hmac_key):
            if secret:
                text = text.replace(secret, "***")
        return text[:FAILURE_TEXT_MAX]      # cut after masking: a cut must not leave half a secret


def lane_key(update: Update) -> Hashable:
    """The lane an update waits in: its chat, or its user for updates without a chat (inline
    queries); None for the rare update with neither."""
    if update.effective_chat is not None:
        return update.effective_chat.id
    if update.effective_user is not None:
        return update.effective_user.id
    return None
