"""http_gateway: KIE callbacks, the Telegram webhook, /health, /ready and /metrics.

Served on every instance, active or passive. A callback is checked (job exists, per-job token
compared in constant time, JSON with a task id, optional KIE HMAC) and written to the Postgres
inbox before 200 is answered; the leader's supervisor picks it up. /health never touches the
database and never answers 500. Anything refused gets a 4xx with a plain reason and is not
stored. Tokens and secrets are never logged: request lines are logged without queries.
Requests are read whole on one selector thread (`_Listener`), so a client that stalls costs a
socket until the read timeout, never a thread.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import logging
import math
import os
import re
import selectors
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bot.update_body import BadUpdate, parse_update
from faults import crashpoint
from kie.records import task_id_of
from storage import inbox
from storage import updates as update_inbox
from storage.db import Database, DatabaseUnavailable
from storage.jobs import get_job
from storage.jsonb import storable
from telemetry.metrics import Metrics

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20        # callbacks and updates are a few KiB; anything near 1 MiB is not one
MAX_HEAD_BYTES = 64 << 10       # request line and headers
READ_TIMEOUT_S = 10.0           # from connect until the whole request has arrived (and for the answer)
MAX_CONNECTIONS = 256           # open connections, waiting or served; beyond it: 503 at once
MAX_WORKERS = 64                # requests handled at once; complete requests wait their turn
MAX_JSON_DEPTH = 64             # updates and callbacks nest about 6 deep; storing recurses per level
HMAC_WINDOW_S = 300
_CALLBACK_PATH = re.compile(r"^/kie/callback/(\d{1,18})$")


@dataclass
class GatewayHooks:
    """What the gateway tells the rest of the instance; all thread-safe."""

    status: Callable[[], dict[str, Any]]          # for /health
    ready: Callable[[], bool]                     # for /ready
    callback_stored: Callable[[int], None]        # wake the local supervisor
    update_stored: Callable[[], None]             # wake the local intake (webhook mode)
    # This instance leads: what it stores reaches its own actors through the hooks above and needs
    # no NOTIFY (each one costs a transaction in every listening session). A standby notifies.
    leading: Callable[[], bool] = lambda: False


class ListenError(Exception):
    """The gateway's address cannot be bound (the port is taken, or not ours to take)."""


class HttpError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class Request:
    """One POST as a route sees it: the body is read only once the route has authenticated it."""

    headers: Any                                  # email.message.Message
    query: dict[str, list[str]]
    read_body: Callable[[], bytes]                # raises HttpError(413) for an oversized body


def decode_json(raw: bytes) -> Any:
    """The JSON value of `raw`; HttpError(400) for anything that is not JSON, for numbers
    Postgres' jsonb cannot hold (NaN, Infinity, 1e400) and for nesting past MAX_JSON_DEPTH
    (which would exhaust the stack later, when the body is cleaned, decoded or stored)."""
    def refuse_constant(name: str) -> Any:
        raise ValueError(name)

    def finite(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError("number out of range")
        return value

    try:
        value = json.loads(raw, parse_constant=refuse_constant, parse_float=finite)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise HttpError(400, "body is not valid JSON") from None
    if not _nesting_within(value, MAX_JSON_DEPTH):
        raise HttpError(400, "body is nested too deeply")
    return value


def _nesting_within(value: Any, limit: int) -> bool:
    """Whether no object or array in `value` is more than `limit` levels deep (no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return False
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return True


class HttpGateway:
    def __init__(self, host: str, port: int, db: Database, metrics: Metrics, hooks: GatewayHooks, *,
                 instance_id: str, hmac_key: str | None = None, webhook_secret: str | None = None,
                 read_timeout_s: float = READ_TIMEOUT_S, max_connections: int = MAX_CONNECTIONS,
                 max_workers: int = MAX_WORKERS) -> None:
        self.db, self.metrics, self.hooks = db, metrics, hooks
        self.instance_id, self.hmac_key, self.webhook_secret = instance_id, hmac_key, webhook_secret
        gateway = self

        class Handler(_Handler):
            owner = gateway

        self.listener = _Listener((host, port), Handler, read_timeout_s=read_timeout_s,
                                  max_connections=max_connections, max_workers=max_workers)

    @property
    def port(self) -> int:
        return self.listener.port

    def start(self) -> None:
        self.listener.start()

    def stop(self) -> None:
        self.listener.stop()

    # --- routes -----------------------------------------------------------------------------
    def kie_callback(self, job_id: int, request: Request) -> dict[str, Any]:
        job = get_job(self.db, job_id)
        if job is None:
            self.metrics.callbacks.labels("unknown_job").inc()
            raise HttpError(404, "no such job")
        token = (request.query.get("token") or [""])[0]
        if not token or not hmac.compare_digest(token.encode(), job.callback_token.encode()):
            self.metrics.callbacks.labels("forged").inc()
            raise HttpError(403, "token does not match")
        try:
            body = self._callback_body(request)
        except HttpError:
            self.metrics.callbacks.labels("invalid").inc()
            raise
        signature_ok = self._check_signature(request.headers, body) if self.hmac_key else None
        if signature_ok is False:
            self.metrics.callbacks.labels("forged").inc()
            raise HttpError(401, "webhook signature invalid or outside the time window")
        inbox.store_callback(self.db, job_id, body, signature_ok, self.instance_id, notify=not self.hooks.leading())
        crashpoint("after_callback_stored")
        self.metrics.callbacks.labels("stored").inc()
        log.info("callback stored for job %s", job_id, extra={"action": "callback_stored", "job_id": job_id})
        self.hooks.callback_stored(job_id)
        return {"code": 200, "msg": "success"}

    @staticmethod
    def _callback_body(request: Request) -> dict[str, Any]:
        """A KIE callback body: JSON, an object, with a `data` object and a task id."""
        if request.headers.get_content_type() != "application/json":
            raise HttpError(415, "Content-Type must be application/json")
        body = decode_json(request.read_body())
        if not isinstance(body, dict):
            raise HttpError(400, "body must be a JSON object")
        if not isinstance(body.get("data"), dict):
            raise HttpError(400, "body has no data object")
        if task_id_of(body) is None:
            raise HttpError(400, "body has no task id")
        return body

    def _check_signature(self, headers: Any, body: dict[str, Any]) -> bool:
        assert self.hmac_key is not None
        ts_text, signature = headers.get("X-Webhook-Timestamp"), headers.get("X-Webhook-Signature")
        task_id = task_id_of(body)
        if not ts_text or not signature or not task_id:
            return False
        try:
            ts = int(ts_text)
        except ValueError:
            return False
        if abs(time.time() - ts) > HMAC_WINDOW_S:
            return False
        expected = base64.b64encode(hmac.new(self.hmac_key.encode(), f"{task_id}.{ts}".encode(),
                                             hashlib.sha256).digest()).decode()
        return hmac.compare_digest(expected, signature)

    def telegram_webhook(self, request: Request) -> dict[str, Any]:
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token") or ""
        if not self.webhook_secret or not hmac.compare_digest(given.encode(), self.webhook_secret.encode()):
            raise HttpError(403, "secret token missing or wrong")
        try:
            # Made storable first, so PTB decodes exactly what the intake will read back.
            body = storable(decode_json(request.read_body()))
            update_id = parse_update(body)
        except BadUpdate as exc:
            self.metrics.telegram_updates.labels("refused").inc()
            raise HttpError(400, exc.reason) from None
        except HttpError:
            self.metrics.telegram_updates.labels("refused").inc()
            raise
        update_inbox.store_update(self.db, update_id, body, self.instance_id, notify=not self.hooks.leading())
        self.hooks.update_stored()
        return {"ok": True}


class _Handler(BaseHTTPRequestHandler):
    """One complete request, already read by the listener, answered on a worker thread."""

    owner: HttpGateway
    protocol_version = "HTTP/1.1"
    server_version = "kiebot"

    def __init__(self, sock: socket.socket, raw: bytes, address: Any, server: Any) -> None:
        self._raw = raw
        super().__init__(sock, address, server)

    def setup(self) -> None:
        self.connection = self.request
        self.rfile = io.BytesIO(self._raw)
        self.wfile = self.connection.makefile("wb")

    def handle_expect_100(self) -> bool:
        return True       # the listener already answered 100 Continue, if it was asked

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Request lines without the query string: it carries callback tokens."""
        log.debug("%s %s", self.command, urlsplit(self.path).path, extra={"action": "http_request"})

    def do_GET(self) -> None:  # stdlib naming
        path = urlsplit(self.path).path
        if path == "/health":
            return self._json(200, self.owner.hooks.status())
        if path == "/ready":
            ready = self.owner.hooks.ready()
            return self._json(200 if ready else 503, {"ready": ready})
        if path == "/metrics":
            # OpenMetrics when the scraper's Accept header asks for it (Prometheus does), else text.
            return self._send(200, *self.owner.metrics.exposition(self.headers.get("Accept")))
        self._json(404, {"error": "not found"})
        return None

    def do_HEAD(self) -> None:  # stdlib naming
        self.do_GET()     # _send leaves the body out for HEAD

    def do_POST(self) -> None:  # stdlib naming
        parts = urlsplit(self.path)
        request = Request(self.headers, parse_qs(parts.query), self._body)
        try:
            match = _CALLBACK_PATH.match(parts.path)
            if match:
                return self._json(200, self.owner.kie_callback(int(match.group(1)), request))
            if parts.path == "/telegram/webhook":
                return self._json(200, self.owner.telegram_webhook(request))
            raise HttpError(404, "not found")
        except HttpError as exc:
            log.info("%s %s -> %d %s", self.command, parts.path, exc.status, exc.reason,
                     extra={"action": "http_rejected"})
            self._json(exc.status, {"error": exc.reason})
        except DatabaseUnavailable:
            # Not stored, so not acknowledged: the sender retries.
            self._json(503, {"error": "database unavailable, try again"})
        except Exception:  # the request boundary: log, answer 500, keep serving
            log.exception("request failed", extra={"action": "http_error"})
            self._json(500, {"error": "internal error"})

    def _body(self) -> bytes:
        """The body; the listener has read all of it unless it is over MAX_BODY_BYTES."""
        length = int(self.headers.get("Content-Length") or "0")   # checked by the listener
        if length > MAX_BODY_BYTES:
            raise HttpError(413, "body too large")
        return self.rfile.read(length)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload, default=str).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")       # one request per connection: see _Listener
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


# --- the listener -----------------------------------------------------------------------------
@dataclass
class _Connection:
    sock: socket.socket
    address: Any
    deadline: float
    buffer: bytearray = field(default_factory=bytearray)
    need: int | None = None         # bytes of head + body, once the head has arrived


class _Refusal(Exception):
    """A request the listener answers itself, before any handler runs."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def _plain_response(status: int, reason: str) -> bytes:
    body = json.dumps({"error": reason}).encode()
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


def _request_length(head: bytes) -> tuple[int, bool]:
    """(bytes of body the listener must wait for, whether 100 Continue was asked) of a head."""
    lengths: set[bytes] = set()
    expect = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip()
        if name == b"content-length":
            lengths.add(value)
        elif name == b"transfer-encoding":
            raise _Refusal(411, "send a Content-Length, not a chunked body")
        elif name == b"expect":
            expect = value.lower() == b"100-continue"
    if len(lengths) > 1 or any(not v.isdigit() for v in lengths):
        raise _Refusal(400, "bad Content-Length")
    length = int(lengths.pop()) if lengths else 0
    # An oversized body is not read at all: the route answers 413 after its own checks.
    return (0 if length > MAX_BODY_BYTES else length), expect and 0 < length <= MAX_BODY_BYTES


class _Listener:
    """Accepts connections and reads each request whole on one selector thread; only complete
    requests reach the bounded pool of handler threads. A connection that has not delivered its
    request within the read timeout is answered 408 and closed; one over the connection cap is
    answered 503 at once. Each connection carries one request (keep-alive would let an idle
    client hold a handler), so every answer says `Connection: close`."""

    def __init__(self, address: tuple[str, int], handler: type[_Handler], *, read_timeout_s: float,
                 max_connections: int, max_workers: int) -> None:
        self.handler, self.read_timeout_s, self.max_connections = handler, read_timeout_s, max_connections
        try:
            self._sock = socket.create_server(address, backlog=128)
        except OSError as exc:
            why = os.strerror(exc.errno) if exc.errno else str(exc)
            raise ListenError(f"cannot listen on {address[0]}:{address[1]}: {why}") from None
        self._sock.setblocking(False)
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._sock, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="kiebot-http-worker")
        self._reading: dict[socket.socket, _Connection] = {}
        self._open = 0                      # reading + handed to the pool; guarded by _lock
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="kiebot-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._wake_w.send(b"x")
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        for sock in list(self._reading):
            sock.close()
        self._selector.close()
        self._sock.close()
        self._wake_r.close()
        self._wake_w.close()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                self._serve_once()
            except Exception:  # the listener's boundary: one bad turn must not end serving
                log.exception("http listener failed; serving on", extra={"action": "http_error"})

    def _serve_once(self) -> None:
        for key, _ in self._selector.select(self._next_timeout()):
            if key.fileobj is self._sock:
                self._accept()
            elif key.fileobj is not self._wake_r and key.fileobj in self._reading:
                self._read(self._reading[key.fileobj])
        self._expire(time.monotonic())

    def _next_timeout(self) -> float:
        if not self._reading:
            return 1.0
        soonest = min(c.deadline for c in self._reading.values())
        return max(0.0, min(1.0, soonest - time.monotonic()))

    def _accept(self) -> None:
        while True:
            try:
                sock, address = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            sock.setblocking(False)
            with self._lock:
                full = self._open >= self.max_connections
                self._open += 0 if full else 1
            if full:
                self._answer(sock, 503, "too many connections, try again")
                continue
            self._reading[sock] = _Connection(sock, address, time.monotonic() + self.read_timeout_s)
            self._selector.register(sock, selectors.EVENT_READ)

    def _read(self, conn: _Connection) -> None:
        try:
            chunk = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            chunk = b""
        if not chunk:
            return self._drop(conn, None)        # the client went away before its request
        conn.buffer += chunk
        try:
            self._advance(conn)
        except _Refusal as refusal:
            self._drop(conn, refusal)

    def _advance(self, conn: _Connection) -> None:
        if conn.need is None:
            head_end = conn.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                if len(conn.buffer) > MAX_HEAD_BYTES:
                    raise _Refusal(431, "request head too large")
                return
            length, expect = _request_length(bytes(conn.buffer[:head_end]))
            conn.need = head_end + 4 + length
            if expect and len(conn.buffer) < conn.need:
                try:
                    conn.sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")
                except OSError:
                    pass      # the client sends its body anyway after a while (RFC 9110 10.1.1)
        if len(conn.buffer) >= conn.need:
            self._forget(conn)
            conn.sock.setblocking(True)
            conn.sock.settimeout(self.read_timeout_s)     # bounds writing the answer, too
            self._pool.submit(self._handle, conn.sock, bytes(conn.buffer[:conn.need]), conn.address)

    def _handle(self, sock: socket.socket, raw: bytes, address: Any) -> None:
        try:
            self.handler(sock, raw, address, self)
        except OSError:
            pass          # the client went away while we answered
        except Exception:  # a worker's boundary: log and keep serving
            log.exception("request failed", extra={"action": "http_error"})
        finally:
            sock.close()
            with self._lock:
                self._open -= 1

    def _expire(self, now: float) -> None:
        for conn in [c for c in self._reading.values() if c.deadline <= now]:
            self._drop(conn, _Refusal(408, "request not received in time"))

    def _drop(self, conn: _Connection, refusal: _Refusal | None) -> None:
        self._forget(conn)
        if refusal is not None:
            # A client that just went idle is ordinary; anything else is worth a line.
            level = logging.DEBUG if refusal.status == 408 else logging.INFO
            log.log(level, "connection refused -> %d %s", refusal.status, refusal.reason,
                    extra={"action": "http_rejected"})
            self._answer(conn.sock, refusal.status, refusal.reason)
        else:
            conn.sock.close()
        with self._lock:
            self._open -= 1

    def _forget(self, conn: _Connection) -> None:
        self._selector.unregister(conn.sock)
        del self._reading[conn.sock]

    @staticmethod
    def _answer(sock: socket.socket, status: int, reason: str) -> None:
        """Best effort and never blocking: the selector thread must not wait on one client."""
        try:
            sock.send(_plain_response(status, reason))
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        sock.close()
