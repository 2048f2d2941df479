"""The two pipelines the throughput and latency scenarios drive, both inside the bench process
against the simulators in bench/simhost.py:

- `KiebotPipeline`: a real kiebot Runtime (LeaderActor, JobSupervisor, a JobActor per job, the
  HTTP gateway receiving KIE's callbacks, the bot gateway's PTB loop and FloodControl). Jobs
  bypass the Telegram conversation: they are inserted with `storage.jobs.create_job` and the
  supervisor is told with the runtime's `_to_supervisor_job`, as the dialogue does after its
  own insert. A thin wrapper around the runtime's Sender reports each delivered result.
- `FloorPipeline`: the same HTTP calls and the same Postgres transactions per job, made by a
  plain `concurrent.futures.ThreadPoolExecutor` and a plain `http.server` callback receiver,
  with `storage.jobs` / `storage.inbox` functions and `requests`, no actors.

Per job both make: createTask, (KIE's callback POST), recordInfo, sendPhoto (by URL, so the
Telegram simulator fetches the file from the KIE simulator), and 13 Postgres transactions:
insert, get, ->submitting, ->submitted, inbox read, [receiver: get, inbox insert], inbox read,
get, ->succeeded, ->delivering, ->delivered, inbox mark-processed.
"""
from __future__ import annotations

import concurrent.futures
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from actors.job_state import JobState as S
from actors.outcomes import JobOutcome
from bench.logs import log_to_file
from bench.runs import RUNS_DIR
from sim.cluster import LOCAL, free_port, instance_env, wait_until
from storage import inbox
from storage.db import Database
from storage.jobs import Moved, NewJob, create_job, created, get_job, transition

MODEL = "z-image"
DoneHook = Callable[[int, bool], None]      # (job number, delivered as a result?)


def job_input(n: int) -> dict[str, Any]:
    return {"prompt": f"bench job {n}", "aspect_ratio": "1:1"}


def number_of(caption: str | None) -> int | None:
    """The bench job number from a result caption ("Z-Image: bench job 17")."""
    if not caption or "bench job " not in caption:
        return None
    try:
        return int(caption.rsplit("bench job ", 1)[1].split()[0])
    except ValueError:
        return None


class _ReportingSender:
    """Delegates to the runtime's TelegramSender; tells the bench when a result went out."""

    def __init__(self, inner: Any, on_done: DoneHook) -> None:
        self._inner, self._on_done = inner, on_done

    def send_media(self, chat_id: int, kind: str, source: str, caption: str | None, buttons: Any,
                   reply: Any = None) -> Any:
        sent = self._inner.send_media(chat_id, kind, source, caption, buttons, reply)
        n = number_of(caption)
        if n is not None:
            self._on_done(n, True)
        return sent

    def send_text(self, chat_id: int, text: str, buttons: Any = None, reply: Any = None) -> Any:
        sent = self._inner.send_text(chat_id, text, buttons, reply)
        n = number_of(text)
        if n is not None:
            self._on_done(n, True)
        return sent

    def for_epoch(self, epoch: int) -> _ReportingSender:
        return _ReportingSender(self._inner.for_epoch(epoch), self._on_done)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class KiebotPipeline:
    name = "kiebot"

    def __init__(self, database_url: str, sims: dict[str, str], *, chats: list[int], log_name: str,
                 extra_env: dict[str, str] | None = None) -> None:
        from config.settings import Settings
        from runtime import Runtime

        self.database_url = database_url
        self.chats = chats
        self.port = free_port()
        env = instance_env(database_url, port=self.port, instance_id=f"bench-{log_name}",
                           public_url=f"http://{LOCAL}:{self.port}", **sims,
                           KIEBOT_CLIENT_PACING="off", **(extra_env or {}))
        self.runtime = Runtime(Settings.from_env(env), database_url)
        self.db = Database(database_url, application_name="kiebot-bench-feeder")
        self.on_done: DoneHook = lambda n, ok: None
        self.runtime.bot.sender = _ReportingSender(self.runtime.bot.sender, lambda n, ok: self.on_done(n, ok))
        self.log_name = log_name

    def start(self) -> None:
        self.runtime.start()
        wait_until(lambda: self.runtime.status.active, 30, "the in-process instance to lead")

    def submit(self, n: int) -> None:
        chat = self.chats[n % len(self.chats)]
        job = created(create_job(self.db, NewJob(request_key=f"bench:{n}", chat_id=chat, user_id=chat, lang="en",
                                            model=MODEL, input=job_input(n), deadline_s=900)))
        self.runtime._to_supervisor_job(job.id)

    def stop(self) -> None:
        self.runtime.stop()
        self.db.close()


def logged_kiebot_pipeline(url: str, sims: dict[str, str], chats: list[int], log_path: Path,
                           log_name: str) -> KiebotPipeline:
    """A KiebotPipeline whose instance logs to `log_path`, a fresh file (log_findings reads it)."""
    log_path.unlink(missing_ok=True)
    log_to_file(log_path)
    return KiebotPipeline(url, sims, chats=chats, log_name=log_name)


class FloorPipeline:
    """No actors: a thread per job from a pool, a plain receiver for KIE's callbacks."""

    name = "floor"

    def __init__(self, database_url: str, sims: dict[str, str], *, chats: list[int], workers: int,
                 epoch: int) -> None:
        self.database_url = database_url
        self.sims = sims
        self.chats = chats
        self.epoch = epoch
        self.db = Database(database_url, application_name="kiebot-bench-floor")
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="floor")
        self.on_done: DoneHook = lambda n, ok: None
        self.errors: list[str] = []
        self._events: dict[int, threading.Event] = {}
        self._events_lock = threading.Lock()
        self._local = threading.local()
        self._kie_auth = {"Authorization": f"Bearer {sims['kie_key']}"}
        self.port = free_port()
        floor = self

        class Receiver(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                pass

            def do_POST(self) -> None:  # stdlib naming
                status, body = floor.receive(self.path, self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer((LOCAL, self.port), Receiver)
        self.server.daemon_threads = True
        self.server.request_queue_size = 256
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="floor-receiver")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.server.shutdown()
        self.server.server_close()
        self.db.close()

    # --- the callback receiver: the same two transactions as http_gateway -------------------
    def receive(self, path: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(path)
        try:
            job_id = int(parts.path.rsplit("/", 1)[1])
            body = json.loads(raw)
        except (ValueError, IndexError):
            return 400, {"error": "bad request"}
        token = parse_qs(parts.query).get("token", [""])[0]
        job = get_job(self.db, job_id)
        if job is None or token != job.callback_token:
            return 403, {"error": "forged"}
        inbox.store_callback(self.db, job_id, body, None, "floor", notify=False)
        with self._events_lock:
            event = self._events.get(job_id)
        if event is not None:
            event.set()
        return 200, {"code": 200, "msg": "success"}

    # --- one job, start to finish, on a pool thread -----------------------------------------
    def submit(self, n: int) -> None:
        future = self.pool.submit(self._job, n)
        future.add_done_callback(lambda f: self._finished(n, f))

    def _finished(self, n: int, future: concurrent.futures.Future[None]) -> None:
        exc = future.exception()
        if exc is not None:
            self.errors.append(repr(exc))
        self.on_done(n, exc is None)

    def _sessions(self) -> tuple[requests.Session, requests.Session]:
        if not hasattr(self._local, "kie"):
            self._local.kie, self._local.tg = requests.Session(), requests.Session()
        return self._local.kie, self._local.tg

    def _move(self, job_id: int, old: S, new: S, **fields: Any) -> Any:
        result = transition(self.db, job_id, old, new, self.epoch, **fields)
        if not isinstance(result, Moved):
            raise RuntimeError(f"floor lost a race on job {job_id}: {old.value} -> {new.value}")
        return result.job

    def _job(self, n: int) -> None:
        kie, tg = self._sessions()
        chat = self.chats[n % len(self.chats)]
        job = created(create_job(self.db, NewJob(request_key=f"floor:{n}", chat_id=chat, user_id=chat, lang="en",
                                            model=MODEL, input=job_input(n), deadline_s=900)))
        event = threading.Event()
        with self._events_lock:
            self._events[job.id] = event
        try:
            job = get_job(self.db, job.id)
            self._move(job.id, S.CREATED, S.SUBMITTING)
            callback = f"http://{LOCAL}:{self.port}/kie/callback/{job.id}?token={job.callback_token}"
            resp = kie.post(f"{self.sims['kie_url']}/api/v1/jobs/createTask", headers=self._kie_auth, timeout=20,
                            json={"model": MODEL, "input": job.input, "callBackUrl": callback})
            task_id = resp.json()["data"]["taskId"]
            self._move(job.id, S.SUBMITTING, S.SUBMITTED, kie_task_id=task_id)
            inbox.pending_for_job(self.db, job.id)
            if not event.wait(30):
                raise TimeoutError(f"no callback for job {job.id}")
            pending = inbox.pending_for_job(self.db, job.id)
            job = get_job(self.db, job.id)
            record = kie.get(f"{self.sims['kie_url']}/api/v1/jobs/recordInfo", params={"taskId": task_id},
                             headers=self._kie_auth, timeout=20).json()["data"]
            if record["state"] != "success":
                raise RuntimeError(f"task {task_id} is {record['state']}")
            urls = json.loads(record["resultJson"])["resultUrls"]
            self._move(job.id, S.SUBMITTED, S.SUCCEEDED, outcome=JobOutcome.SUCCESS, result_urls=urls)
            self._move(job.id, S.SUCCEEDED, S.DELIVERING)
            markup = {"inline_keyboard": [[{"text": "🔄 Regenerate", "callback_data": f"job:regen:{job.id}"},
                                           {"text": "✏️ Edit prompt", "callback_data": f"job:edit:{job.id}"}],
                                          [{"text": "🖼 Original", "callback_data": f"job:orig:{job.id}"},
                                           {"text": "🔁 Create another", "callback_data": "menu:create"}],
                                          [{"text": "🏠 Menu", "callback_data": "menu:home"}]]}
            sent = tg.post(f"{self.sims['telegram_url']}/bot{self.sims['telegram_token']}/sendPhoto", timeout=30,
                           data={"chat_id": chat, "photo": urls[0], "caption": f"Z-Image: {job.input['prompt']}",
                                 "reply_markup": json.dumps(markup)}).json()
            if not sent.get("ok"):
                raise RuntimeError(f"sendPhoto refused: {sent}")
            self._move(job.id, S.DELIVERING, S.DELIVERED, delivered_message_ids=[sent["result"]["message_id"]])
            for stored in pending:
                inbox.mark_processed(self.db, stored.id, self.epoch)
        finally:
            with self._events_lock:
                self._events.pop(job.id, None)


def take_epoch(database_url: str, holder: str) -> int:
    """Bump the epoch as a new leader would (tests/support/factories.py does the same)."""
    from storage.leader_term import LockConnection

    conn = LockConnection(database_url, key=1, application_name="kiebot-bench-epoch")
    try:
        return conn.bump_epoch(holder)
    finally:
        conn.close()


class Driver:
    """Feeds a pipeline: closed loop (at most `concurrency` unfinished jobs) or open loop
    (a steady `rate` per second). Records when each job was submitted and finished."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.submitted: dict[int, float] = {}
        self.finished: dict[int, float] = {}
        self.failed: set[int] = set()
        self._lock = threading.Lock()
        self._slots: threading.Semaphore | None = None
        self._all_done = threading.Condition(self._lock)
        pipeline.on_done = self._done
        self._next = 0

    def _done(self, n: int, ok: bool) -> None:
        now = time.monotonic()
        with self._lock:
            if n in self.finished or n not in self.submitted:
                return
            self.finished[n] = now
            if not ok:
                self.failed.add(n)
            self._all_done.notify_all()
        if self._slots is not None:
            self._slots.release()

    def _submit_one(self) -> None:
        n = self._next
        self._next += 1
        with self._lock:
            self.submitted[n] = time.monotonic()
        self.pipeline.submit(n)

    def closed_loop(self, concurrency: int, seconds: float) -> None:
        self._slots = threading.Semaphore(concurrency)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self._slots.acquire(timeout=0.2):
                self._submit_one()

    def open_loop(self, rate: float, seconds: float) -> None:
        start = time.monotonic()
        total = int(rate * seconds)
        for i in range(total):
            due = start + i / rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            self._submit_one()

    def drain(self, timeout: float) -> int:
        """Wait until every submitted job finished; return how many did not."""
        deadline = time.monotonic() + timeout
        with self._all_done:
            while len(self.finished) < len(self.submitted):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._all_done.wait(remaining)
            return len(self.submitted) - len(self.finished)

    def rate_between(self, t0: float, t1: float) -> float:
        done = sum(1 for t in self.finished.values() if t0 <= t < t1)
        return done / (t1 - t0) if t1 > t0 else float("nan")


__all__ = ["RUNS_DIR", "Driver", "FloorPipeline", "KiebotPipeline", "take_epoch"]
