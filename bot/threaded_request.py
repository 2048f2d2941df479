"""A PTB request transport that makes each Bot API call with `requests` on a thread of its own.

PTB's HTTPXRequest keeps an asyncio connection pool whose bookkeeping (httpcore checks every
pooled connection for expiry, with a syscall each, on every request) costs the event loop's
thread several milliseconds of CPU per request when many are in flight, and in a busy process
every syscall also hands the GIL away. The checkout desk answers a burst of pre-checkout queries
against Telegram's 10 s deadline, so it makes its calls here instead: one blocking
`requests.Session` per thread (each keeps its own keep-alive connection), and the loop only waits
for the thread. PTB still builds the request and turns the answer into objects and errors
(`BaseRequest.post`), so a refusal raises the same TelegramError as anywhere else in the bot.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any

import requests
from telegram._utils.defaultvalue import DEFAULT_NONE
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TelegramError, TimedOut
from telegram.request import BaseRequest, RequestData


class ThreadedRequest(BaseRequest):
    """Bot API calls on `threads` threads, each with its own keep-alive session."""

    def __init__(self, threads: int, connect_timeout: float = 5.0, read_timeout: float = 10.0) -> None:
        self._threads = threads
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(self._threads, thread_name_prefix="kiebot-bot-call")

    async def shutdown(self) -> None:
        # Calls on the wire are not waited for here (that would block the loop): each ends within
        # its own timeouts, and its thread then ends.
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    async def do_request(self, url: str, method: str, request_data: RequestData | None = None,
                         read_timeout: ODVInput[float] = DEFAULT_NONE,
                         write_timeout: ODVInput[float] = DEFAULT_NONE,
                         connect_timeout: ODVInput[float] = DEFAULT_NONE,
                         pool_timeout: ODVInput[float] = DEFAULT_NONE) -> tuple[int, bytes]:
        if self._pool is None:
            raise RuntimeError("ThreadedRequest used before initialize()")
        timeouts = (self._connect_timeout if not isinstance(connect_timeout, float | int) else connect_timeout,
                    self._read_timeout if not isinstance(read_timeout, float | int) else read_timeout)
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._call, url, method,
                                                                request_data, timeouts)

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def _call(self, url: str, method: str, request_data: RequestData | None,
              timeouts: tuple[float, float]) -> tuple[int, bytes]:
        """One blocking call; transport failures become PTB's errors as HTTPXRequest raises them
        (no answer in time: TimedOut; any other: NetworkError). requests' messages carry the URL,
        and with it the bot token, so only the failure's kind is kept, with no cause attached."""
        kwargs: dict[str, Any] = {"timeout": timeouts}
        if request_data is not None:
            if request_data.contains_files:
                raise NotImplementedError("ThreadedRequest sends no files")
            kwargs["data"] = request_data.json_parameters
        failure: TelegramError | None = None
        try:
            response = self._session().request(method, url, **kwargs)
        except requests.Timeout as exc:
            failure = TimedOut(f"requests.{type(exc).__name__}")
        except requests.RequestException as exc:
            failure = NetworkError(f"requests.{type(exc).__name__}")
        if failure is not None:
            raise failure                   # outside the except: no cause or context to carry the URL
        return response.status_code, response.content
