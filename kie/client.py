"""The one KIE client: createTask, recordInfo, credit, through one requests.Session.

The body `code` is the real status (HTTP may be 200 on failure); every answer is mapped to a
result or to an error class in kie/errors.py that says what to do. Calls are paced below KIE's
limits (20 createTask per 10 s, 10 recordInfo per s) by blocking the calling thread. The API
key is sent in a header only and never appears in an exception or a log line.
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from decimal import Decimal, InvalidOperation
from typing import Any, Callable

import requests

from kie.errors import KieAlert, KieError, KieJobFailed, KieRetryLater, KieSubmitOutcomeUnknown
from kie.records import TaskRecord, parse_record

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3.05
READ_TIMEOUT_S = 20.0
CREATE_LIMIT = (20, 10.25)      # calls per window seconds, per account, a little under KIE's
RECORD_LIMIT = (10, 1.05)
RETRY_LATER_CODES = {429, 455, 500, 502, 503, 504, 408}
ALERT_CODES = {401, 402, 433}
RECORD_IS_NULL = "recordinfo is null"


class SlidingWindow:
    """Blocks `acquire()` until fewer than `limit` calls happened in the last `window` s."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self._clock = limit, window, clock
        self._calls: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait for a slot; return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                while self._calls and now - self._calls[0] >= self.window:
                    self._calls.popleft()
                if len(self._calls) < self.limit:
                    self._calls.append(now)
                    return waited
                pause = self.window - (now - self._calls[0])
            time.sleep(pause)
            waited += pause


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

    def create_task(self, model: str, input: dict[str, Any], callback_url: str | None = None) -> str:
        """Submit a task and return its taskId. Never retried here: createTask is not idempotent."""
        body: dict[str, Any] = {"model": model, "input": input}
        if callback_url:
            body["callBackUrl"] = callback_url
        if self._create_window is not None:
            self._create_window.acquire()
        try:
            resp = self._request("createTask", lambda: self._session.post(
                f"{self.base_url}/api/v1/jobs/createTask", json=body, timeout=self._timeout))
        except (requests.ConnectTimeout, requests.exceptions.SSLError) as exc:
            raise KieRetryLater(f"createTask could not connect: {type(exc).__name__}") from None
        except requests.ConnectionError as exc:
            if _never_sent(exc):
                raise KieRetryLater("createTask could not connect") from None
            raise KieSubmitOutcomeUnknown(f"createTask connection broke: {type(exc).__name__}") from None
        except requests.Timeout:
            raise KieSubmitOutcomeUnknown("createTask timed out after the request was sent") from None
        code, msg, data = self._envelope(resp, "createTask")
        if code == 200 and isinstance(data, dict) and isinstance(data.get("taskId"), str):
            return data["taskId"]
        if code == 200:
            raise KieSubmitOutcomeUnknown("createTask answered 200 without a taskId")
        raise self._error(code, msg, "createTask")

    def record_info(self, task_id: str) -> TaskRecord | None:
        """The task's record, or None while KIE answers `recordInfo is null` (not visible yet)."""
        if self._record_window is not None:
            self._record_window.acquire()
        try:
            resp = self._request("recordInfo", lambda: self._session.get(
                f"{self.base_url}/api/v1/jobs/recordInfo", params={"taskId": task_id}, timeout=self._timeout))
        except requests.RequestException as exc:
            raise KieRetryLater(f"recordInfo failed: {type(exc).__name__}") from None
        code, msg, data = self._envelope(resp, "recordInfo")
        if code == 200 and isinstance(data, dict):
            return parse_record(data)
        if code == 422 and RECORD_IS_NULL in msg.lower():
            return None
        raise self._error(code, msg, "recordInfo")

    def upload_file(self, data: bytes, file_name: str, upload_path: str = "kiebot") -> str:
        """Put a user's file on KIE's upload host (kept about 3 days); return its download URL."""
        try:
            resp = self._request("upload", lambda: self._session.post(
                f"{self.upload_url}/api/file-stream-upload", files={"file": (file_name, data)},
                data={"uploadPath": upload_path, "fileName": file_name}, timeout=(CONNECT_TIMEOUT_S, 120)))
        except requests.RequestException as exc:
            raise KieRetryLater(f"upload failed: {type(exc).__name__}") from None
        code, msg, data_out = self._envelope(resp, "upload")
        url = (data_out or {}).get("downloadUrl") or (data_out or {}).get("fileUrl") if isinstance(data_out, dict) else None
        if code == 200 and isinstance(url, str):
            return url
        if code == 200:
            raise KieRetryLater("upload answered 200 without a URL")
        raise self._error(code, msg, "upload")

    def credit(self) -> Decimal:
        try:
            resp = self._request("credit", lambda: self._session.get(
                f"{self.base_url}/api/v1/chat/credit", timeout=self._timeout))
        except requests.RequestException as exc:
            raise KieRetryLater(f"credit failed: {type(exc).__name__}") from None
        code, msg, data = self._envelope(resp, "credit")
        if code != 200:
            raise self._error(code, msg, "credit")
        try:
            return Decimal(str(data))
        except InvalidOperation:
            raise KieRetryLater(f"credit answered a non-number: {data!r}") from None

    def _envelope(self, resp: requests.Response, call: str) -> tuple[int, str, Any]:
        try:
            body = resp.json()
        except ValueError:
            if resp.status_code >= 500 or resp.status_code == 429:
                raise KieRetryLater(f"{call}: HTTP {resp.status_code}", code=resp.status_code) from None
            raise KieError(f"{call}: HTTP {resp.status_code} with a body that is not JSON",
                           code=resp.status_code) from None
        if not isinstance(body, dict):
            raise KieError(f"{call}: unexpected body type {type(body).__name__}")
        code = body.get("code", resp.status_code)
        try:
            code = int(code)
        except (TypeError, ValueError):
            code = resp.status_code
        msg = str(body.get("msg") or body.get("message") or "")
        return code, msg, body.get("data")

    @staticmethod
    def _error(code: int, msg: str, call: str) -> KieError:
        text = f"{call}: {code} {msg}".strip()
        if code in RETRY_LATER_CODES:
            return KieRetryLater(text, code=code)
        if code in ALERT_CODES:
            return KieAlert(text, code=code)
        return KieJobFailed(msg or f"error {code}", code=code)


def _never_sent(exc: requests.ConnectionError) -> bool:
    """True when the connection failed before the request could have reached KIE."""
    text = repr(exc)
    return any(s in text for s in ("NewConnectionError", "Connection refused", "Name or service not known",
                                   "Failed to establish"))
