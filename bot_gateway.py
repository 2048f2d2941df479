"""bot_gateway: python-telegram-bot on its own thread and asyncio loop.

Owns the PTB Application (base URL from TELEGRAM_API_URL), the durable intake and the sending
bridge for the actors. Intake: every update is written to Postgres (unique update_id) before
it is confirmed to Telegram, then processed from there and marked processed, fenced by the
epoch, only after its handler finished. Long polling runs only while this instance leads;
in webhook mode http_gateway stores updates and the leader processes them the same way.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Callable

from telegram import Update
from telegram.error import Conflict, NetworkError, TelegramError, TimedOut
from telegram.ext import Application, ApplicationBuilder
from telegram.request import HTTPXRequest

from bot import dialogue
from bot.context import Deps
from bot.flood_control import MAX_ON_WIRE, FloodControl
from bot.sender import TelegramSender, run_on_loop
from config.catalogue import Catalogue
from config.settings import Settings
from storage import updates as update_inbox
from storage.db import Database, DatabaseUnavailable
from telemetry.metrics import Metrics

log = logging.getLogger(__name__)

LONG_POLL_TIMEOUT_S = 10
POLL_ERROR_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)
INBOX_SWEEP_S = 1.0
START_TIMEOUT_S = 30.0
BOT_COMMANDS = [("start", "Menu"), ("imagine", "Generate from one line"), ("cancel", "Leave the current step"),
                ("help", "Help")]


class FencedOut(Exception):
    """This instance's epoch is no longer current: stop taking updates."""


class BotGateway:
    def __init__(self, settings: Settings, db: Database, catalogue: Catalogue, metrics: Metrics,
                 notify_job: Callable[[int], None], cancel_job: Callable[[int], None] = lambda job_id: None) -> None:
        self.settings, self.db, self.metrics = settings, db, metrics
        self.loop = asyncio.new_event_loop()
        self.app = self._build_application()
        dialogue.install(self.app, Deps(db, catalogue, metrics, notify_job, cancel_job,
                                        max_active_jobs=settings.max_active_jobs, admin_ids=settings.admin_ids))
        self.sender = TelegramSender(self.app.bot, self.loop)
        self._thread = threading.Thread(target=self.loop.run_forever, name="kiebot-telegram", daemon=True)
        self._intake: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def _build_application(self) -> Application[Any, Any, Any, Any, Any, Any]:
        base = self.settings.telegram_api_url
        return (ApplicationBuilder()
                .token(self.settings.telegram_bot_token)
                .base_url(f"{base}/bot")
                .base_file_url(f"{base}/file/bot")
                .updater(None)
                .rate_limiter(FloodControl(on_wait=self._observe_wait, on_queue=self.metrics.telegram_queue.set,
                                           on_request=self._observe_request,
                                           pacing=self.settings.client_pacing))
                # FloodControl keeps MAX_ON_WIRE requests in flight; file downloads bypass it.
                .request(HTTPXRequest(connection_pool_size=2 * MAX_ON_WIRE, connect_timeout=5, read_timeout=30,
                                      write_timeout=30, media_write_timeout=60))
                .get_updates_request(HTTPXRequest(connection_pool_size=2, read_timeout=LONG_POLL_TIMEOUT_S + 10))
                .build())

    def _observe_request(self, endpoint: str, result: str, seconds: float) -> None:
        self.metrics.telegram_requests.labels(endpoint, result).inc()
        self.metrics.telegram_latency.labels(endpoint).observe(seconds)

    def _observe_wait(self, reason: str, seconds: float) -> None:
        self.metrics.telegram_waits.labels(reason).inc(seconds)
        if reason == "429":
            self.metrics.telegram_429.inc()

    # --- lifecycle (called from other threads) ----------------------------------------------
    def start(self) -> None:
        self._thread.start()
        run_on_loop(self.loop, self.app.initialize(), START_TIMEOUT_S)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self.set_epoch(None)
        try:
            run_on_loop(self.loop, self.app.shutdown(), 10)
        except Exception:  # noqa: BLE001 - shutting down; nothing left to protect
            log.debug("PTB shutdown raised", exc_info=True)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()

    def set_epoch(self, epoch: int | None) -> None:
        """Leadership listener: start intake for `epoch`, or stop it (None). Thread-safe."""
        async def switch() -> None:
            if self._intake is not None:
                self._intake.cancel()
                try:
                    await self._intake
                except (asyncio.CancelledError, Exception):  # noqa: BLE001 - it is being replaced
                    pass
                self._intake = None
            if epoch is not None:
                self._intake = asyncio.create_task(self._run_intake(epoch), name=f"intake-{epoch}")

        if self._thread.is_alive():
            run_on_loop(self.loop, switch(), 15)

    def wake(self) -> None:
        """Stored updates are waiting (webhook): process them soon. Thread-safe."""
        self.loop.call_soon_threadsafe(self._wake.set)

    # --- intake (on the bot loop) -----------------------------------------------------------
    async def _run_intake(self, epoch: int) -> None:
        """Intake for one epoch; an unexpected error is logged and the intake starts over."""
        log.info("telegram intake started (%s)", self.settings.bot_mode, extra={"action": "intake_start", "epoch": epoch})
        try:
            while True:
                try:
                    await self._intake_once(epoch)
                except (asyncio.CancelledError, FencedOut):
                    raise
                except Exception:  # noqa: BLE001 - the intake boundary: log, count, start over
                    log.exception("telegram intake failed; restarting", extra={"action": "intake_error"})
                    self.metrics.telegram_updates.labels("intake_error").inc()
                    await asyncio.sleep(POLL_ERROR_BACKOFF_S[-1])
        except FencedOut:
            log.warning("epoch %s is stale; intake stops", epoch, extra={"action": "intake_fenced"})
        finally:
            log.info("telegram intake stopped", extra={"action": "intake_stop", "epoch": epoch})

    async def _intake_once(self, epoch: int) -> None:
        await self._register_intake()
        await self._process_stored(epoch)
        if self.settings.bot_mode == "polling":
            await self._poll(epoch)
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), INBOX_SWEEP_S)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            await self._process_stored(epoch)

    async def _register_intake(self) -> None:
        """Tell Telegram where updates go: our webhook (with its secret), or nowhere (polling).
        Retried until it works; pending updates are never dropped."""
        failures = 0
        while True:
            try:
                if self.settings.bot_mode == "webhook":
                    await self.app.bot.set_webhook(f"{self.settings.public_url}/telegram/webhook",
                                                   secret_token=self.settings.telegram_webhook_secret,
                                                   allowed_updates=Update.ALL_TYPES)
                else:
                    await self.app.bot.delete_webhook(drop_pending_updates=False)
                return
            except TelegramError as exc:
                failures += 1
                log.warning("could not register the intake: %s", type(exc).__name__, extra={"action": "intake_register"})
                await asyncio.sleep(POLL_ERROR_BACKOFF_S[min(failures, len(POLL_ERROR_BACKOFF_S)) - 1])

    async def _poll(self, epoch: int) -> None:
        offset: int | None = None
        failures = 0
        while True:
            try:
                batch = await self.app.bot.get_updates(offset=offset, timeout=LONG_POLL_TIMEOUT_S,
                                                       allowed_updates=Update.ALL_TYPES)
                failures = 0
            except (Conflict, TimedOut, NetworkError) as exc:
                failures += 1
                log.warning("getUpdates failed: %s", type(exc).__name__, extra={"action": "poll_error"})
                await asyncio.sleep(POLL_ERROR_BACKOFF_S[min(failures, len(POLL_ERROR_BACKOFF_S)) - 1])
                continue
            for update in batch:
                stored = await asyncio.to_thread(self._store, update.update_id, update.to_dict())
                if stored is None:
                    return          # database gone: the leader will step down and restart us
            if batch:
                # The next getUpdates confirms this batch: only now that every update is stored.
                offset = batch[-1].update_id + 1
                await self._process_stored(epoch)

    def _store(self, update_id: int, body: dict[str, Any]) -> bool | None:
        try:
            new = update_inbox.store_update(self.db, update_id, body, self.settings.instance_id)
        except DatabaseUnavailable as exc:
            log.error("cannot store update %s: %s", update_id, exc, extra={"action": "update_store_failed"})
            return None
        self.metrics.telegram_updates.labels("stored" if new else "duplicate").inc()
        if not new:
            self.metrics.duplicates_suppressed.labels("update").inc()
        return new

    async def _process_stored(self, epoch: int) -> None:
        """Handle every stored, unprocessed update in update_id order."""
        while True:
            rows = await asyncio.to_thread(update_inbox.unprocessed, self.db, 100)
            if not rows:
                return
            for update_id, body in rows:
                try:
                    update = Update.de_json(body, self.app.bot)
                    await self.app.process_update(update)
                    result = "processed"
                except TelegramError as exc:
                    # A malformed update must not block the inbox; PTB already reported handler errors.
                    log.error("update %s could not be processed: %s", update_id, exc, extra={"action": "update_failed"})
                    result = "failed"
                if not await asyncio.to_thread(update_inbox.mark_processed, self.db, update_id, epoch):
                    raise FencedOut(epoch)
                self.metrics.telegram_updates.labels(result).inc()
