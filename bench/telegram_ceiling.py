"""Scenario 4 — the Telegram ceiling.

1,000 results to 200 chats (5 each) through the bot's real sending path — BotGateway's PTB
application with FloodControl (pacing on, as shipped) and the TelegramSender bridge, called
the way a JobActor delivers (`bot.presenter.Presenter.send_result_part`: sendPhoto by URL with caption and
buttons) from 200 threads at once — against `TelegramSim(enforce_limits=True)`, whose token
buckets answer 429 like Telegram (30 messages/s per bot, 1/s per private chat with a burst of 3).
Sustained rate = (results − 1) / (last send − first send) as seen by the simulator.
"""
from __future__ import annotations

import concurrent.futures
import datetime as dt
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from bench.postgres import fresh_database
from bench.stats import summarize
from sim.cluster import LOCAL

NAME = "telegram_ceiling"
TITLE = "Telegram ceiling"
TELEGRAM_RATE = 30.0
TARGET_SHARE = 0.95


class ImageServer:
    """Serves a distinct small PNG at /r/<n>.png, standing in for KIE's result host."""

    def __init__(self) -> None:
        from sim.kie_media import png_bytes

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                pass

            def do_GET(self) -> None:  # stdlib naming
                body = png_bytes(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer((LOCAL, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{LOCAL}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def make_job(n: int, chat: int, url: str) -> Any:
    from actors.job_state import JobState
    from storage.jobs import Job

    now = dt.datetime.now(dt.UTC)
    return Job(id=n, request_key=f"ceiling:{n}", chat_id=chat, user_id=chat, lang="en", model="z-image",
               input={"prompt": f"bench job {n}", "aspect_ratio": "1:1"}, state=JobState.DELIVERING,
               outcome="success", callback_token="x", kie_task_id=f"task{n}", result_urls=[url],
               failure_reason=None, progress_message_id=None, delivered_message_ids=None, claim_epoch=1,
               claimed_at=now, epoch=1, deadline_at=now, created_at=now, updated_at=now, submitted_at=now,
               finished_at=now, delivered_at=None)


def run(quick: bool = False) -> dict[str, Any]:
    from actors.ports import SendError
    from bot_gateway import BotGateway
    from config.catalogue import load_catalogue
    from config.settings import Settings
    from sim.telegram import TelegramSim
    from storage.db import Database
    from telemetry.metrics import Metrics

    results, chat_count = (200, 40) if quick else (1000, 200)
    chats = list(range(630_001, 630_001 + chat_count))
    images = ImageServer()
    catalogue = load_catalogue()
    url = fresh_database(NAME)
    errors: list[str] = []
    with TelegramSim(enforce_limits=True) as sim:
        last = 0
        for chat in chats:
            last = sim.user_sends(chat, "hi")
        requests.get(f"{sim.url}/bot{sim.token}/getUpdates", params={"offset": last + 1, "timeout": 0},
                     timeout=30).raise_for_status()
        time.sleep(1.5)             # the getUpdates above is not a message; buckets start full anyway
        settings = Settings.from_env({"TELEGRAM_BOT_TOKEN": sim.token, "TELEGRAM_API_URL": sim.url,
                                      "KIE_API_KEY": "unused"})
        metrics = Metrics()
        gateway = BotGateway(settings, Database(url), catalogue, metrics, notify_job=lambda job_id: None)
        gateway.start()
        presenter = gateway.presenter_for(1)
        jobs = [make_job(n, chats[n % chat_count], f"{images.url}/r/{n}.png") for n in range(results)]

        def deliver(job: Any) -> None:
            try:
                for index in range(presenter.result_parts(job)):
                    presenter.send_result_part(job, index)
            except SendError as exc:
                errors.append(f"job {job.id}: {exc}")

        started = time.monotonic()
        try:
            with concurrent.futures.ThreadPoolExecutor(chat_count) as pool:
                list(pool.map(deliver, jobs))
        finally:
            elapsed = time.monotonic() - started
            gateway.stop()
            images.stop()
        calls = [c for c in sim.calls() if c.method in ("sendPhoto", "sendMessage", "editMessageText")]
    ok = [c for c in calls if c.status == 200]
    too_many = [c for c in calls if c.status == 429]
    times = sorted(c.at for c in ok)
    sustained = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float("nan")
    share = sustained / TELEGRAM_RATE
    per_chat: dict[int, list[float]] = {}
    for c in ok:
        per_chat.setdefault(int(c.params["chat_id"]), []).append(c.at)
    gaps = [b - a for ts in per_chat.values() for a, b in zip(sorted(ts), sorted(ts)[1:])]
    window_max = 0
    j = 0
    for i, t in enumerate(times):           # most sends in any 1-second window
        while times[j] <= t - 1.0:
            j += 1
        window_max = max(window_max, i - j + 1)
    per_second: dict[int, int] = {}
    whole = int(times[-1] - times[0]) if times else 0       # the last, partial second is left out of the plot
    for t in times:
        if int(t - times[0]) < whole:
            per_second[int(t - times[0])] = per_second.get(int(t - times[0]), 0) + 1
    print(f"    {len(ok)}/{results} delivered in {elapsed:.1f}s: sustained {sustained:.2f}/s = {share:.1%} of 30/s, "
          f"429s {len(too_many)}, max in any 1 s {window_max}, smallest per-chat gap {min(gaps, default=0):.3f}s",
          flush=True)
    return {
        "name": NAME, "title": TITLE, "quick": quick,
        "setup": {"results": results, "chats": chat_count, "caller_threads": chat_count, "flood_control": "as shipped",
                  "telegram_sim": "enforce_limits=True"},
        "delivered": len(ok), "errors": errors[:5], "error_count": len(errors), "elapsed_s": elapsed,
        "sustained_per_s": sustained, "share_of_30": share, "http_429": len(too_many), "max_in_1s": window_max,
        "per_chat_gap_s": summarize(gaps), "flood_control_429_metric": _sample(metrics, "kiebot_telegram_429_total"),
        "series": sorted(per_second.items()),
        "headline": {"sustained_per_s": sustained, "share_of_30": share, "http_429": len(too_many)},
        "targets": [
            {"what": "sustained rate ÷ 30 msg/s", "value": share, "target": f"≥ {TARGET_SHARE:.0%}",
             "pass": share >= TARGET_SHARE, "format": "percent"},
            {"what": "429 answers", "value": len(too_many), "target": "0", "pass": len(too_many) == 0, "format": "int"},
            {"what": "results delivered", "value": len(ok), "target": f"{results}", "pass": len(ok) == results,
             "format": "int"},
        ],
    }


def _sample(metrics: Any, name: str) -> float | None:
    for family in metrics.registry.collect() if hasattr(metrics, "registry") else []:
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    return None
