"""Task lifecycle and callback delivery of the KIE simulator.

Owns `Fate` (how one task will go), the task book (states over time, results, the recordInfo and
callback bodies), one scheduler thread that drives every timed event from a heap, and a small
worker pool that POSTs callbacks with retries, HMAC headers and the scripted delivery faults.
"""
from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import heapq
import hmac
import http.client
import itertools
import json
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from sim import kie_media

log = logging.getLogger(__name__)

INTERMEDIATE_STATES = ("waiting", "queuing", "generating")
ODD_SPELLING = {"waiting": "Waiting", "queuing": "Queueing", "generating": "GENERATING"}
OUTCOMES = ("success", "fail", "stuck")
CALLBACK_MODES = ("normal", "duplicate", "early", "late", "lost", "out_of_order")
SIGNATURE_MODES = ("valid", "bad", "stale", "missing", "replayed_tampered")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# Default time to terminal, as a multiple of the sim's default_duration_s, per model kind.
DURATION_FACTOR_BY_KIND = {"image": 1.0, "text": 1.0, "audio": 2.0, "video": 4.0}
LATE_DEFAULT_DELAY_S = 1.0
STALE_TIMESTAMP_AGE_S = 600
TAMPERED_URL = "https://attacker.invalid/{task_id}.png"
MSG_SUCCESS = "Playground task completed successfully."
MSG_FAIL = "Playground task failed."
MSG_IN_PROGRESS = "Playground task in progress."


@dataclass
class Fate:
    """How one task will go; the default is a plain success with a normal callback."""

    outcome: str = "success"
    states: tuple[str, ...] = INTERMEDIATE_STATES
    duration_s: float | None = None
    fail_code: str = "500"
    fail_msg: str = "Internal error"
    visibility_lag_s: float = 0.0
    callback: str = "normal"
    callback_delay_s: float = 0.0
    odd_state_spelling: bool = False
    result_count: int = 1
    signature: str = "valid"

    def __post_init__(self) -> None:
        self.states = tuple(self.states)
        self.fail_code = str(self.fail_code)
        problems = []
        if self.outcome not in OUTCOMES:
            problems.append(f"outcome must be one of {OUTCOMES}")
        if any(s not in INTERMEDIATE_STATES for s in self.states):
            problems.append(f"states must be drawn from {INTERMEDIATE_STATES}")
        if self.callback not in CALLBACK_MODES:
            problems.append(f"callback must be one of {CALLBACK_MODES}")
        if self.signature not in SIGNATURE_MODES:
            problems.append(f"signature must be one of {SIGNATURE_MODES}")
        if self.result_count < 1:
            problems.append("result_count must be at least 1")
        if problems:
            raise ValueError("bad Fate: " + "; ".join(problems))

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["states"] = list(self.states)
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Fate:
        """Build from the admin API's JSON; unknown keys are an error so typos do not pass."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(raw) - names
        if unknown:
            raise ValueError(f"unknown Fate fields: {sorted(unknown)}")
        return cls(**raw)


def now_ms() -> int:
    return int(time.time() * 1000)


def number(value: Decimal | None) -> int | float | None:
    """A Decimal as the JSON number KIE would send: an int when whole, else a float."""
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


class Scheduler:
    """One thread and a heap: every timed event of the sim (state changes, terminal states, late
    callbacks, retry backoffs) without a thread or a sleep per task. Jobs must be quick."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="kie-sim-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)

    def clear(self) -> None:
        with self._cond:
            self._heap.clear()
            self._cond.notify_all()

    def call_later(self, delay_s: float, job: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay_s), next(self._seq), job))
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopped:
                        return
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        _, _, job = heapq.heappop(self._heap)
                        break
                    self._cond.wait(timeout=self._heap[0][0] - now if self._heap else None)
            try:
                job()
            except Exception:  # a broken job must not stop the clock of every other task
                log.exception("kie-sim scheduled job failed")


class WorkerPool:
    """A few daemon threads that send callbacks, so slow receivers never hold up the scheduler
    and `duplicate` copies really arrive concurrently."""

    def __init__(self, size: int = 8) -> None:
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._threads = [threading.Thread(target=self._run, name=f"kie-sim-callback-{i}", daemon=True)
                         for i in range(size)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def submit(self, job: Callable[[], None]) -> None:
        self._queue.put(job)

    def stop(self) -> None:
        for _ in self._threads:
            self._queue.put(None)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                job()
            except Exception:
                log.exception("kie-sim callback job failed")


@dataclass
class Envelope:
    """One callback body to deliver, with how to sign it; `kind` labels it in the attempt log."""

    task_id: str
    url: str
    body: dict[str, Any]
    sign: str  # none | valid | bad | stale | missing | replay
    kind: str  # final | duplicate | stale | tampered


class CallbackSender:
    """POSTs envelopes with retries. A chain is delivered in order: the next envelope starts once
    the previous one succeeded or was given up (that is how out_of_order and replays are built)."""

    def __init__(self, scheduler: Scheduler, pool: WorkerPool, record: Callable[[dict[str, Any]], None],
                 epoch: Callable[[], int], hmac_key: str | None, timeout_s: float,
                 backoff_s: tuple[float, ...], retries: int) -> None:
        self._scheduler = scheduler
        self._pool = pool
        self._record = record
        self._epoch = epoch
        self.hmac_key = hmac_key
        self.timeout_s = timeout_s
        self.backoff_s = tuple(backoff_s) or (0.2,)
        self.retries = retries

    def deliver(self, chain: list[Envelope], delay_s: float = 0.0, sync_first: bool = False) -> None:
        """Start delivering `chain`; with `sync_first` the first attempt runs in the caller's thread."""
        state = {"epoch": self._epoch(), "last_valid": None}
        if sync_first:
            self._attempt(chain, 0, 1, state)
        elif delay_s > 0:
            self._scheduler.call_later(delay_s, lambda: self._pool.submit(lambda: self._attempt(chain, 0, 1, state)))
        else:
            self._pool.submit(lambda: self._attempt(chain, 0, 1, state))

    def sign(self, task_id: str, timestamp: int, key: str | None = None) -> str:
        key = self.hmac_key if key is None else key
        assert key is not None, "signing needs a key: none given and the simulator has none"
        mac = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
        return base64.b64encode(mac).decode()

    def _headers(self, env: Envelope, state: dict[str, Any]) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": "kie-sim-callback/1.0"}
        if self.hmac_key is None or env.sign in ("none", "missing"):
            return headers
        ts = int(time.time())
        if env.sign == "replay" and state["last_valid"]:
            ts, sig = state["last_valid"]
        elif env.sign == "bad":
            sig = self.sign(env.task_id, ts, key=self.hmac_key + "-not-the-key")
        elif env.sign == "stale":
            ts -= STALE_TIMESTAMP_AGE_S
            sig = self.sign(env.task_id, ts)
        else:
            sig = self.sign(env.task_id, ts)
            state["last_valid"] = (ts, sig)
        headers["X-Webhook-Timestamp"] = str(ts)
        headers["X-Webhook-Signature"] = sig
        return headers

    def _attempt(self, chain: list[Envelope], index: int, attempt: int, state: dict[str, Any]) -> None:
        if state["epoch"] != self._epoch():
            return  # the sim was reset since this chain started
        env = chain[index]
        headers = self._headers(env, state)
        entry: dict[str, Any] = {"task_id": env.task_id, "url": env.url, "headers": headers,
                                 "body": env.body, "kind": env.kind, "attempt": attempt,
                                 "status": None, "error": None, "refused": False}
        parts = urlsplit(env.url)
        started = time.monotonic()
        if parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS:
            entry.update(refused=True, error="refused: the sim only calls back http://127.0.0.1 or localhost")
            ok, retry = False, False
        else:
            status, error = self._post(parts, json.dumps(env.body).encode(), headers)
            entry.update(status=status, error=error)
            ok = error is None and status is not None and 200 <= status < 300
            retry = not ok and attempt <= self.retries
        entry["will_retry"] = retry
        entry["elapsed_s"] = round(time.monotonic() - started, 4)
        entry["at"] = time.time()
        self._record(entry)
        if retry:
            delay = self.backoff_s[min(attempt - 1, len(self.backoff_s) - 1)]
            self._scheduler.call_later(
                delay, lambda: self._pool.submit(lambda: self._attempt(chain, index, attempt + 1, state)))
        elif index + 1 < len(chain):
            self._pool.submit(lambda: self._attempt(chain, index + 1, 1, state))

    def _post(self, parts: Any, body: bytes, headers: dict[str, str]) -> tuple[int | None, str | None]:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=self.timeout_s)
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            return resp.status, None
        except TimeoutError:
            return None, f"timeout after {self.timeout_s}s"
        except (OSError, http.client.HTTPException) as exc:
            return None, f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()


@dataclass
class Task:
    """One created task and everything recordInfo and the callback report about it."""

    task_id: str
    model: str
    kind: str
    input: dict[str, Any]
    callback_url: str | None
    param: str
    fate: Fate
    price: Decimal
    duration_s: float
    created_ms: int
    created_mono: float
    update_ms: int
    state: str = "waiting"
    shown_state: str = "waiting"
    complete_ms: int | None = None
    completed_mono: float | None = None
    result_urls: list[str] = field(default_factory=list)
    result_object: dict[str, Any] | None = None
    credits_consumed: Decimal | None = None
    remained_credits: Decimal | None = None     # the account's balance once the task ended
    legacy_credit_fields: bool = False          # consumeCredits + remainedCredits, not creditsConsumed
    generation: int = 0
    callback_note: str = ""

    @property
    def terminal(self) -> bool:
        return self.state in ("success", "fail")

    def result_json(self) -> str:
        if self.state != "success":
            return ""
        if self.result_object is not None:
            return json.dumps({"resultObject": self.result_object})
        return json.dumps({"resultUrls": self.result_urls})

    def credit_fields(self, consumed: Decimal | None) -> dict[str, Any]:
        """What the task cost, spelt as newer KIE pages do (`creditsConsumed`) or as older ones
        do (`consumeCredits` and the account's `remainedCredits`)."""
        if self.legacy_credit_fields:
            return {"consumeCredits": number(consumed), "remainedCredits": number(self.remained_credits)}
        return {"creditsConsumed": number(consumed)}

    def record(self) -> dict[str, Any]:
        """The `data` of recordInfo (the credits are null until the task ends)."""
        failed = self.state == "fail"
        return {
            "taskId": self.task_id, "model": self.model, "state": self.shown_state,
            "param": self.param, "resultJson": self.result_json(),
            "failCode": self.fate.fail_code if failed else "",
            "failMsg": self.fate.fail_msg if failed else "",
            "costTime": self.cost_time(), "completeTime": self.complete_ms,
            "createTime": self.created_ms, "updateTime": self.update_ms,
            **self.credit_fields(self.credits_consumed),
        }

    def cost_time(self) -> int | None:
        """Seconds, as every callback example shows (the docs' 'ms' disagrees)."""
        if self.complete_ms is None:
            return None
        return round((self.complete_ms - self.created_ms) / 1000)

    def callback_body(self) -> dict[str, Any]:
        """The market callback for the terminal state."""
        data: dict[str, Any] = {"taskId": self.task_id, "model": self.model, "state": self.state,
                                "param": self.param}
        if self.state == "success":
            data["resultJson"] = self.result_json()
        else:
            data.update(resultJson=None, failCode=self.fate.fail_code, failMsg=self.fate.fail_msg)
        data.update(costTime=self.cost_time(), completeTime=self.complete_ms, createTime=self.created_ms,
                    updateTime=self.update_ms, **self.credit_fields(self.credits_consumed or Decimal(0)))
        return {"code": 200 if self.state == "success" else 501,
                "msg": MSG_SUCCESS if self.state == "success" else MSG_FAIL, "data": data}

    def stale_body(self) -> dict[str, Any]:
        """What out_of_order sends after the final body: a failed body after a success, or an
        in-progress body after a failure; its updateTime is older than the final one's."""
        stale_update = min(self.created_ms, self.update_ms - 1)
        data: dict[str, Any] = {"taskId": self.task_id, "model": self.model, "param": self.param,
                                "costTime": None, "completeTime": None, "createTime": self.created_ms,
                                "updateTime": stale_update, **self.credit_fields(Decimal(0))}
        if self.state == "success":
            data.update(state="fail", resultJson=None, failCode=self.fate.fail_code, failMsg=self.fate.fail_msg)
            return {"code": 501, "msg": MSG_FAIL, "data": data}
        data.update(state="generating", resultJson="")
        return {"code": 200, "msg": MSG_IN_PROGRESS, "data": data}

    def tampered_body(self) -> dict[str, Any]:
        """A success body whose resultUrls point somewhere else: what a replay attacker sends."""
        body = self.callback_body()
        body["code"], body["msg"] = 200, MSG_SUCCESS
        data = body["data"]
        data.update(state="success", resultJson=json.dumps({"resultUrls": [TAMPERED_URL.format(task_id=self.task_id)]}))
        for key in ("failCode", "failMsg"):
            data.pop(key, None)
        return body

    def summary(self) -> dict[str, Any]:
        """What `KieSim.tasks()` shows: the request, the fate and where the task is now."""
        return {"taskId": self.task_id, "model": self.model, "kind": self.kind, "input": self.input,
                "callBackUrl": self.callback_url, "param": self.param, "state": self.shown_state,
                "canonical_state": self.state, "created": self.created_ms, "createTime": self.created_ms,
                "updateTime": self.update_ms, "completeTime": self.complete_ms,
                "duration_s": self.duration_s, "price": number(self.price),
                "creditsConsumed": number(self.credits_consumed),
                "remainedCredits": number(self.remained_credits), "resultUrls": list(self.result_urls),
                "fate": self.fate.to_json(), "callback_note": self.callback_note}


@dataclass
class ResultFile:
    """A generated file served at {url}/files/<name> until `expires_mono`."""

    seed: str
    kind: str
    content_type: str
    expires_mono: float


class TaskBook:
    """Every task of the sim; moves them along their fates and fires their callbacks."""

    def __init__(self, scheduler: Scheduler, sender: CallbackSender, seed: int,
                 default_duration_s: float, duration_by_kind: dict[str, float] | None,
                 result_ttl_s: float, on_success: Callable[[Task], None],
                 balance: Callable[[], Decimal] | None = None) -> None:
        """on_success charges a task that succeeded; balance reads the account's credits
        afterwards (for `remainedCredits`)."""
        self._lock = threading.RLock()
        self._scheduler = scheduler
        self._sender = sender
        self._seed = seed
        self._rng = random.Random(f"{seed}-fates")
        self.default_duration_s = default_duration_s
        self.duration_by_kind = dict(duration_by_kind or {})
        self.result_ttl_s = result_ttl_s
        self._on_success = on_success
        self._balance = balance
        self.base_url = ""
        self.tasks: dict[str, Task] = {}
        self.files: dict[str, ResultFile] = {}

    def reset(self) -> None:
        with self._lock:
            self.tasks.clear()
            self.files.clear()
            self._rng = random.Random(f"{self._seed}-fates")

    def duration_for(self, kind: str, fate: Fate) -> float:
        if fate.duration_s is not None:
            return max(0.0, fate.duration_s)
        if kind in self.duration_by_kind:
            return self.duration_by_kind[kind]
        return self.default_duration_s * DURATION_FACTOR_BY_KIND.get(kind, 1.0)

    def create(self, task_id: str, model: str, kind: str, given_input: dict[str, Any],
               callback_url: str | None, param: str, fate: Fate, price: Decimal,
               legacy_credit_fields: bool = False) -> Task:
        """Store the task and schedule its walk. An `early` fate finishes here and now, and its
        first callback attempt completes before this returns (so before the HTTP response)."""
        created = now_ms()
        task = Task(task_id=task_id, model=model, kind=kind, input=given_input, callback_url=callback_url,
                    param=param, fate=fate, price=price, duration_s=self.duration_for(kind, fate),
                    created_ms=created, created_mono=time.monotonic(), update_ms=created,
                    legacy_credit_fields=legacy_credit_fields)
        first = fate.states[0] if fate.states else "waiting"
        self._show(task, first)
        with self._lock:
            self.tasks[task_id] = task
            if fate.outcome == "stuck":
                task.callback_note = "stuck: never finishes, no callback"
                return task
            if fate.callback != "early":
                self._schedule_walk(task)
                return task
        # Outside the lock: the receiver may call recordInfo while we wait for its answer.
        self._finish(task, task.generation, sync_callback=True)
        return task

    def _schedule_walk(self, task: Task) -> None:
        gen, steps = task.generation, task.fate.states
        for i, state in enumerate(steps[1:], start=1):
            at = task.duration_s * i / len(steps)
            self._scheduler.call_later(at, functools.partial(self._step, task, gen, state))
        self._scheduler.call_later(task.duration_s, lambda: self._finish(task, gen))

    def _show(self, task: Task, state: str) -> None:
        task.state = state
        task.shown_state = ODD_SPELLING.get(state, state) if task.fate.odd_state_spelling else state

    def _step(self, task: Task, gen: int, state: str) -> None:
        with self._lock:
            if task.generation != gen or task.terminal or self.tasks.get(task.task_id) is not task:
                return
            self._show(task, state)
            task.update_ms = now_ms()

    def complete_now(self, task_id: str) -> None:
        """Jump to the terminal state (a stuck task succeeds); callbacks follow its fate."""
        with self._lock:
            task = self.tasks.get(task_id)
            if task is None:
                raise KeyError(task_id)
            if task.terminal:
                return
            task.generation += 1
            gen = task.generation
        self._finish(task, gen, sync_callback=task.fate.callback == "early")

    def _finish(self, task: Task, gen: int, sync_callback: bool = False) -> None:
        with self._lock:
            if task.generation != gen or task.terminal or self.tasks.get(task.task_id) is not task:
                return
            stamp = now_ms()
            task.complete_ms = task.update_ms = stamp
            task.completed_mono = time.monotonic()
            if task.fate.outcome == "fail":
                self._show(task, "fail")
                task.credits_consumed = Decimal(0)
            else:
                self._make_results(task)
                self._show(task, "success")
                task.credits_consumed = task.price
                self._on_success(task)
            task.remained_credits = self._balance() if self._balance is not None else None
            chains, delay = self._plan_callbacks(task)
        for chain in chains:
            self._sender.deliver(chain, delay_s=delay, sync_first=sync_callback)

    def _make_results(self, task: Task) -> None:
        if task.kind not in kie_media.MEDIA_BY_KIND:
            task.result_object = {"taskId": task.task_id, "text": f"kie-sim result of {task.model}"}
            return
        ext, ctype = kie_media.MEDIA_BY_KIND[task.kind]
        expires = time.monotonic() + self.result_ttl_s
        for i in range(task.fate.result_count):
            name = f"{task.task_id}_{i}.{ext}"
            self.files[name] = ResultFile(seed=f"{task.task_id}/{i}", kind=task.kind,
                                          content_type=ctype, expires_mono=expires)
            task.result_urls.append(f"{self.base_url}/files/{name}")

    def _plan_callbacks(self, task: Task) -> tuple[list[list[Envelope]], float]:
        """The envelope chains to send for a terminal task, and the delay before sending."""
        fate, url = task.fate, task.callback_url
        if not url:
            task.callback_note = "no callBackUrl"
            return [], 0.0
        if fate.callback == "lost":
            task.callback_note = "lost: never sent"
            return [], 0.0
        signing = self._sender.hmac_key is not None
        base_sign = "none" if not signing else ("valid" if fate.signature == "replayed_tampered" else fate.signature)
        chain = [Envelope(task.task_id, url, task.callback_body(), base_sign, "final")]
        if signing and fate.signature == "replayed_tampered":
            chain.append(Envelope(task.task_id, url, task.tampered_body(), "replay", "tampered"))
        if fate.callback == "out_of_order":
            chain.append(Envelope(task.task_id, url, task.stale_body(), base_sign, "stale"))
        chains = [chain]
        if fate.callback == "duplicate":
            copies = self._rng.choice((2, 3))
            chains += [[dataclasses.replace(e, kind="duplicate") for e in chain] for _ in range(copies - 1)]
        delay = fate.callback_delay_s
        if fate.callback == "late" and delay <= 0:
            delay = LATE_DEFAULT_DELAY_S
        task.callback_note = f"{fate.callback}: {len(chains)} chain(s) of {len(chain)}, after {delay}s"
        return chains, (0.0 if fate.callback == "early" else delay)

    def record(self, task_id: str) -> dict[str, Any] | None:
        """recordInfo data, or None while the task is unknown or not yet visible."""
        with self._lock:
            task = self.tasks.get(task_id)
            if task is None or time.monotonic() - task.created_mono < task.fate.visibility_lag_s:
                return None
            return task.record()

    def summaries(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {tid: t.summary() for tid, t in self.tasks.items()}

    def file(self, name: str, ignore_expiry: bool = False) -> tuple[str, bytes] | None:
        """(Content-Type, bytes) of a result file, or None when unknown or expired."""
        with self._lock:
            entry = self.files.get(name)
        if entry is None or (not ignore_expiry and time.monotonic() >= entry.expires_mono):
            return None
        _, ctype, data = kie_media.media_for(entry.kind, entry.seed)
        return ctype, data
