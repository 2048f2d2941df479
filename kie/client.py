"""The one KIE client: createTask, recordInfo, upload, credit, through one requests.Session.

The body `code` is the real status (HTTP may be 200 on failure); every answer, readable or not,
and every transport failure is mapped (by kie/answers.py) to a result or to one of the action
classes in kie/errors.py; nothing else escapes, and redirects are never followed. Calls are paced below KIE's
limits (20 createTask per 10 s, 10 recordInfo per s) by blocking the calling thread; a createTask's
turn can be taken before the call (create_turn), so its caller waits before it commits. The API
key is sent in a header only and never appears in an exception or a log line.
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import requests

from kie import answers
from kie.errors import KieRetryLater, KieSubmitOutcomeUnknown
from kie.records import TaskRecord, parse_record

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3.05
READ_TIMEOUT_S = 20.0
CREATE_LIMIT = (20, 10.25)      # calls per window seconds, per account, a little under KIE's
RECORD_LIMIT = (10, 1.05)
RECORD_IS_NULL = "recordinfo is null"


@dataclass(frozen=True)
class Turn:
    """Room for one call in a SlidingWindow, counted from `at` until the call goes out (`use`)."""
    at: float


UNPACED_TURN = Turn(0.0)     # the turn of a client without pacing (KIEBOT_CLIENT_PACING=off)


class SlidingWindow:
    """Blocks `take()` until fewer than `limit` calls happened (or are about to) in the last `window` s."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self._clock = limit, window, clock
        self._calls: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def take(self) -> Turn:
        """Wait for room and hold it."""
        while (turn := self.try_take()) is None:
            time.sleep(self.room_in())
        return turn

    def try_take(self) -> Turn | None:
        """Room held now, or None when there is none (take() waits for it)."""
        with self._lock:
            now = self._clock()
            if self._pause(now):
                return None
            self._calls.append(now)
            return Turn(now)

    def room_in(self) -> float:
        """Seconds until there is room for one more call (0: now)."""
        with self._lock:
            return self._pause(self._clock())

    def _pause(self, now: float) -> float:
        while self._calls and now - self._calls[0] >= self.window:
            self._calls.popleft()
        return 0.0 if len(self._calls) < self.limit else self.window - (now - self._calls[0])

    def use(self, turn: Turn) -> bool:
        """The call goes out now: it counts from now, not from when its turn was taken. False
        when the turn aged out of the window meanwhile (its room may have gone to another call)
        and there is no room now either: then the call must not go."""
        with self._lock:
            now = self._clock()
            try:
                self._calls.remove(turn.at)
            except ValueError:
                if self._pause(now):
                    return False
            self._calls.append(now)                 # no earlier than any call held
            return True


def build_session() -> requests.Session:
    """The factory every outward KIE session comes from (tests guard the network here)."""
    session = requests.Session()
    session.headers["User-Agent"] = "kiebot/0.1"
    return session


class KieClient:
    def __init__(self, base_url: str, api_key: str, *, upload_url: str | None = None,
                 session: requests.Session | None = None,
                 read_timeout: float = READ_TIMEOUT_S,
                 observe: Callable[[str, str, float], None] | None = None,
                 pacing: bool = True) -> None:
        self.base_url = base_url.rstrip("/")
        self.upload_url = (upload_url or base_url).rstrip("/")
        self._session = session or build_session()
        self._session.headers["Authorization"] = f"Bearer {api_key}"
        self._timeout = (CONNECT_TIMEOUT_S, read_timeout)
        # pacing=False (KIEBOT_CLIENT_PACING=off) is for benchmarks against a sim without limits.
        self._create_window = SlidingWindow(*CREATE_LIMIT) if pacing else None
        self._record_window = SlidingWindow(*RECORD_LIMIT) if pacing else None
        self._observe = observe or (lambda method, result, seconds: None)

    def _request(self, method: str, call: Callable[[], requests.Response]) -> requests.Response:
        """One HTTP exchange, timed and counted; exceptions pass through unchanged."""
        started = time.monotonic()
        try:
            resp = call()
        except requests.RequestException as exc:
            self._observe(method, type(exc).__name__, time.monotonic() - started)
            raise
        self._observe(method, str(resp.status_code), time.monotonic() - started)
        return resp

    def create_turn(self) -> Turn:
        """Wait until the account's pace (CREATE_LIMIT) has room for one more createTask, and hold
        that room for `create_task(turn=...)`. A caller that records "this goes to KIE now" before
        the call takes its turn first, so that nothing waits for the pace once it is recorded."""
        return self._create_window.take() if self._create_window is not None else UNPACED_TURN

    def try_create_turn(self) -> Turn | None:
        """A turn if the pace has room now, else None (create_turn waits for one)."""
        return self._create_window.try_take() if self._create_window is not None else UNPACED_TURN

    def create_task(self, model: str, input: dict[str, Any], callback_url: str | None = None, *,  # noqa: A002 - KIE's field
                    turn: Turn | None = None) -> str:
        """Submit a task and return its taskId. Never retried here: createTask is not idempotent.
        Raises KieRetryLater only when KIE cannot have the task, KieSubmitOutcomeUnknown when it
        may (kie/answers.py says which answer is which), KieJobFailed or KieAlert when KIE says so.
        Without a `turn` from create_turn, it waits for one here."""
        body: dict[str, Any] = {"model": model, "input": input}
        if callback_url:
            body["callBackUrl"] = callback_url
        if self._create_window is not None:
            if turn is None:
                self._create_window.take()
            elif not self._create_window.use(turn):
                raise KieRetryLater("createTask not sent: its turn in KIE's pace ran out before the call")
        try:
            resp = self._request("createTask", lambda: self._session.post(
                f"{self.base_url}/api/v1/jobs/createTask", json=body, timeout=self._timeout,
                allow_redirects=False))
        except requests.RequestException as exc:
            raise answers.create_transport_error(exc) from None
        match answers.read(resp):
            case answers.Unreadable() as odd:
                raise answers.unreadable_create_error(odd)
            case answers.Envelope(code=200, data={"taskId": str(task_id)}) if task_id:
                return task_id
            case answers.Envelope(code=200):
                raise KieSubmitOutcomeUnknown("createTask answered 200 without a taskId", code=200)
            case answers.Envelope(code=code, msg=msg):
                raise answers.error_for(code, msg, "createTask")

    def record_info(self, task_id: str) -> TaskRecord | None:
        """The task's record, or None while KIE answers `recordInfo is null` (not visible yet).
        Any answer without a record is KieRetryLater, KieJobFailed or KieAlert: never a decision."""
        if self._record_window is not None:
            self._record_window.take()
        resp = self._get("recordInfo", f"{self.base_url}/api/v1/jobs/recordInfo", {"taskId": task_id})
        match answers.read(resp):
            case answers.Unreadable() as odd:
                raise answers.unreadable_error(odd, "recordInfo")
            case answers.Envelope(code=200, data=dict(data)):
                return parse_record(data)
            case answers.Envelope(code=200):
                raise KieRetryLater("recordInfo answered 200 without a record", code=200)
            case answers.Envelope(code=422, msg=msg) if RECORD_IS_NULL in msg.lower():
                return None
            case answers.Envelope(code=code, msg=msg):
                raise answers.error_for(code, msg, "recordInfo")

    def upload_file(self, data: bytes, file_name: str, upload_path: str = "kiebot") -> str:
        """Put a user's file on KIE's upload host (kept about 3 days); return its download URL."""
        try:
            resp = self._request("upload", lambda: self._session.post(
                f"{self.upload_url}/api/file-stream-upload", files={"file": (file_name, data)},
                data={"uploadPath": upload_path, "fileName": file_name}, timeout=(CONNECT_TIMEOUT_S, 120),
                allow_redirects=False))
        except requests.RequestException as exc:
            raise answers.transport_error(exc, "upload") from None
        match answers.read(resp):
            case answers.Unreadable() as odd:
                raise answers.unreadable_error(odd, "upload")
            case answers.Envelope(code=0 | 200, data=out):     # the upload host's success may be 0
                url = _upload_url_of(out)
                if url is None:
                    raise KieRetryLater("upload answered success without a URL")
                return url
            case answers.Envelope(code=code, msg=msg):
                raise answers.error_for(code, msg, "upload")

    def credit(self) -> Decimal:
        """The account's balance in KIE credits (fractional)."""
        resp = self._get("credit", f"{self.base_url}/api/v1/chat/credit", None)
        match answers.read(resp):
            case answers.Unreadable() as odd:
                raise answers.unreadable_error(odd, "credit")
            case answers.Envelope(code=200, data=data):
                return _credits(data)
            case answers.Envelope(code=code, msg=msg):
                raise answers.error_for(code, msg, "credit")

    def _get(self, method: str, url: str, params: dict[str, str] | None) -> requests.Response:
        """A read-only call: any transport failure is KieRetryLater (or KieAlert for bad config)."""
        try:
            return self._request(method, lambda: self._session.get(
                url, params=params, timeout=self._timeout, allow_redirects=False))
        except requests.RequestException as exc:
            raise answers.transport_error(exc, method) from None


def _upload_url_of(data: Any) -> str | None:
    """Where the upload host says the file is; its answers differ, so either name is read."""
    if not isinstance(data, dict):
        return None
    url = data.get("downloadUrl") or data.get("fileUrl")
    return url if isinstance(url, str) and url else None


def _credits(data: Any) -> Decimal:
    """KIE's balance as a Decimal; documented as an integer, seen fractional (812.5)."""
    if isinstance(data, (int, float, str)) and not isinstance(data, bool):
        try:
            value = Decimal(str(data))
        except InvalidOperation:
            value = Decimal("NaN")
        if value.is_finite():
            return value
    raise KieRetryLater(f"credit answered a non-number ({type(data).__name__})")
