"""The Telegram simulator's HTTP surface: the threaded server and every route it answers.

Owns: routing (/bot<token>/<method>, /file/bot<token>/<path>, the /__sim/ JSON control API, the
web chat page at / and its media at /web/file/<file_id>), reading bodies, writing replies, and
validating control requests (bad input is a 400 with a reason). What a route does is up to
TelegramSim; this module holds no simulator state.
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import math
import re
import socket
import struct
import sys
import threading
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from sim.http_server import SimHTTPServer
from sim.telegram_chats import FILE_UPLOAD_LIMIT, MB
from sim.telegram_spec import ApiError, Upload, parse_body

if TYPE_CHECKING:
    from sim.telegram import TelegramSim

MAX_BODY_BYTES = FILE_UPLOAD_LIMIT + 2 * MB
WEB_PAGE = Path(__file__).with_name("telegram_web.html")
_NOT_FOUND = {"ok": False, "error_code": 404, "description": "Not Found"}
_REQUIRED: Any = object()


# ---------------------------------------------------------------- the /__sim/ control API

def answer_control(sim: TelegramSim, verb: str, name: str, query: dict[str, str],
            body: Any) -> tuple[int, dict[str, Any]]:
    """Answer one /__sim/ request: (HTTP status, JSON body); never raises for bad input."""
    route = _CONTROL.get((verb, name.split("/", 1)[0]))
    if route is None:
        return 404, {"error": f"no control route {verb} /__sim/{name}"}
    if not isinstance(body, dict):
        return 400, {"error": "control API bodies are JSON objects"}
    args = {**query, **body}
    if "/" in name:
        args["id"] = name.split("/", 1)[1]
    try:
        return 200, route(sim, args)
    except LookupError as exc:
        return 404, {"error": str(exc)}
    except AssertionError as exc:
        return 408, {"error": str(exc)}
    except (TypeError, ValueError) as exc:
        return 400, {"error": str(exc)}


def _field(args: dict[str, Any], key: str, default: Any) -> Any:
    """A field's value; absent, null and "" all mean "not given"."""
    if args.get(key) not in (None, ""):
        return args[key]
    if default is _REQUIRED:
        raise ValueError(f"missing field {key!r}")
    return default


def _int(args: dict[str, Any], key: str, default: Any = _REQUIRED) -> Any:
    """An integer field: a JSON number or a query-string numeral."""
    value = _field(args, key, default)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d{1,20}", value.strip()):
        return int(value)
    raise ValueError(f"field {key!r} must be an integer, not {value!r}")


def _float(args: dict[str, Any], key: str, default: Any = _REQUIRED) -> float:
    """A finite, non-negative number of seconds."""
    value = _field(args, key, default)
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"field {key!r} must be a non-negative number, not {value!r}")
    return number


def _str(args: dict[str, Any], key: str, default: Any = _REQUIRED) -> Any:
    value = _field(args, key, default)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"field {key!r} must be a string, not {value!r}")
    return value


def _user(args: dict[str, Any]) -> int:
    user_id: int = _int(args, "user_id")
    if user_id <= 0:
        raise ValueError("field 'user_id' must be a positive integer")
    return user_id


def _photo(args: dict[str, Any]) -> bytes:
    try:
        return base64.b64decode(_str(args, "data_base64"), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"field 'data_base64' is not base64: {exc}") from None


def _jsonable(value: Any) -> Any:
    """Transcripts as JSON for the control API: uploads become their summaries (name, size,
    sha256) and stray bytes a size and digest. Records are walked field by field, because
    `dataclasses.asdict` would first turn an Upload into a plain dict holding its bytes."""
    if isinstance(value, Upload):
        return value.summary()
    if isinstance(value, (bytes, bytearray)):
        return {"size": len(value), "sha256": hashlib.sha256(value).hexdigest()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _chats(s: TelegramSim, a: dict[str, Any]) -> dict[str, Any]:
    """GET /__sim/chats lists the chats; GET /__sim/chats/<id> is one chat as its user sees it."""
    if "id" not in a:
        return {"chats": s.chats()}
    return {"messages": [_jsonable(m) for m in s.chat(_int(a, "id"))]}


def _ack(action: Callable[[], object]) -> dict[str, Any]:
    """Run a control action that answers nothing; its reply is an empty object."""
    action()
    return {}


def _pay(s: TelegramSim, a: dict[str, Any]) -> dict[str, Any]:
    """POST /__sim/pay: the user pays an invoice message (message_id, chat_id) or a link."""
    return {"attempt": _jsonable(s.user_pays(_user(a), _int(a, "message_id", None),
                                             chat_id=_int(a, "chat_id", None),
                                             link=_str(a, "link", None)))}


def _payment_attempts(s: TelegramSim, a: dict[str, Any]) -> dict[str, Any]:
    """GET /__sim/payment_attempts lists every attempt; /payment_attempts/<query id> is one."""
    if "id" not in a:
        return {"attempts": [_jsonable(attempt) for attempt in s.payment_attempts()]}
    return {"attempt": _jsonable(s.payment_attempt(_str(a, "id")))}


def _wait_for_call(s: TelegramSim, a: dict[str, Any]) -> dict[str, Any]:
    calls = s.wait_for_call(_str(a, "method"), _int(a, "count", 1), _float(a, "timeout", 5.0))
    return {"calls": [_jsonable(c) for c in calls]}


_CONTROL: dict[tuple[str, str], Callable[[TelegramSim, dict[str, Any]], dict[str, Any]]] = {
    ("GET", "info"): lambda s, a: {"url": s.url, "token": s.token, "bot": s.bot_user,
                                   "api_version": s.api_version},
    ("GET", "calls"): lambda s, a: {"calls": [_jsonable(c)
                                              for c in s.calls(_str(a, "method", None))]},
    ("GET", "chats"): _chats,
    ("POST", "send"): lambda s, a: {"update_id": s.user_sends(
        _user(a), _str(a, "text"), chat_id=_int(a, "chat_id", None),
        language_code=_str(a, "language_code", "en"), first_name=_str(a, "first_name", "Test"))},
    ("POST", "send_photo"): lambda s, a: {"update_id": s.user_sends_photo(
        _user(a), _photo(a), caption=_str(a, "caption", None), chat_id=_int(a, "chat_id", None))},
    ("POST", "press"): lambda s, a: {"update_id": s.user_presses(
        _user(a), _str(a, "button_text"), chat_id=_int(a, "chat_id", None),
        message_id=_int(a, "message_id", None))},
    ("POST", "reset"): lambda s, a: _ack(s.reset),
    ("POST", "block"): lambda s, a: _ack(lambda: s.block_bot(_user(a))),
    ("POST", "unblock"): lambda s, a: _ack(lambda: s.unblock_bot(_user(a))),
    ("POST", "fail_next"): lambda s, a: _ack(lambda: s.fail_next(
        _str(a, "method"), _int(a, "n", 1), _int(a, "status", 429), _int(a, "retry_after", 1),
        _str(a, "description", None))),
    ("POST", "drop_next_response"): lambda s, a: _ack(lambda: s.drop_next_response(
        _str(a, "method"), _int(a, "n", 1))),
    ("POST", "reset_next"): lambda s, a: _ack(lambda: s.reset_next(
        _str(a, "method"), _int(a, "n", 1), performed=bool(a.get("performed", False)))),
    ("POST", "spare_next"): lambda s, a: _ack(lambda: s.spare_next(_str(a, "method"), _int(a, "n", 1))),
    ("POST", "slow"): lambda s, a: _ack(lambda: s.slow(_str(a, "method"), _float(a, "seconds"))),
    ("POST", "wait_for_call"): _wait_for_call,
    ("POST", "wait_for_answer"): lambda s, a: {"answer": _jsonable(s.callback_answer(
        _int(a, "update_id"), _float(a, "timeout", 5.0)))},
    ("POST", "pay"): _pay,
    ("GET", "payment_attempts"): _payment_attempts,
    ("POST", "wait_for_payment"): lambda s, a: {"attempt": _jsonable(s.wait_for_payment(
        _str(a, "query_id"), _float(a, "timeout", 15.0)))},
    ("POST", "redeliver_successful_payment"): lambda s, a: {
        "update_id": s.redeliver_successful_payment(_str(a, "charge_id"))},
    ("GET", "star_payments"): lambda s, a: {"payments": [_jsonable(p) for p in s.star_payments()]},
    ("POST", "pre_checkout_timeout"): lambda s, a: _ack(lambda: s.set_pre_checkout_timeout(
        _float(a, "seconds"))),
}


def _content_type(data: bytes, declared: str | None) -> str:
    """What the browser needs to show a file inline: sniffed for images, else as stored."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for magic, kind in ((b"\x89PNG", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
                        (b"GIF8", "image/gif"), (b"%PDF", "application/pdf")):
        if data.startswith(magic):
            return kind
    return declared or "application/octet-stream"


# ---------------------------------------------------------------- HTTP plumbing

class SimServer(SimHTTPServer):
    """Handler threads tracked with their connections, so stop() can close idle keep-alive
    sockets and join every thread."""

    def __init__(self, address: tuple[str, int], sim: TelegramSim) -> None:
        super().__init__(address, _Handler)
        self.sim = sim
        self._handlers: dict[socket.socket, threading.Thread] = {}
        self._handlers_lock = threading.Lock()

    def track(self, connection: socket.socket, alive: bool) -> None:
        """Remember open connections so stop() can close idle keep-alive ones."""
        with self._handlers_lock:
            if alive:
                self._handlers[connection] = threading.current_thread()
            else:
                self._handlers.pop(connection, None)

    def close_connections(self, timeout: float = 10.0) -> None:
        """Unblock handler threads waiting for the next keep-alive request, then join them."""
        with self._handlers_lock:
            handlers = list(self._handlers.items())
        for connection, _ in handlers:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for _, thread in handlers:
            thread.join(timeout)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up mid-request is normal (timeouts, dropped responses)."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # An answer goes out as headers, then body: with Nagle's algorithm and the client's delayed
    # ACK every call on a kept-alive connection would wait ~40 ms. Telegram does not.
    disable_nagle_algorithm = True
    server: SimServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
        """Quiet: the transcript is the log."""

    def do_GET(self) -> None:
        self._guarded("GET")

    def do_POST(self) -> None:
        self._guarded("POST")

    def _guarded(self, verb: str) -> None:
        """A simulator bug answers 500 with the reason, instead of a silent disconnect."""
        try:
            self._dispatch(verb)
        except OSError:
            self.close_connection = True
        except Exception as exc:  # noqa: BLE001 - top boundary of the server
            traceback.print_exc()
            self._reply(500, {"ok": False, "error_code": 500,
                              "description": f"Internal Server Error: simulator bug: {exc!r}"})

    def _dispatch(self, verb: str) -> None:
        """Route: /__sim/, the web page, /file/bot<token>/, /bot<token>/<method>."""
        url = urlsplit(self.path)
        path = unquote(url.path)
        body = self._read_body()
        sim = self.server.sim
        if path.startswith("/__sim/"):
            return self._control(verb, path[7:], url.query, body)
        if verb == "GET" and path in ("/", "/web", "/web/"):
            return self._reply(200, WEB_PAGE.read_bytes(), "text/html; charset=utf-8")
        if verb == "GET" and path.startswith("/web/file/"):
            file_id = path[10:]
            try:
                data = sim.file_bytes(file_id)
            except KeyError:
                return self._reply(404, _NOT_FOUND)
            return self._reply(200, data, _content_type(data, sim.file_mime_type(file_id)))
        if path.startswith("/file/bot"):
            token, _, file_path = path[9:].partition("/")
            downloaded = sim.download(token, file_path)
            if downloaded is None:
                return self._reply(404, _NOT_FOUND)
            return self._reply(200, downloaded)
        if not path.startswith("/bot"):
            return self._reply(404, _NOT_FOUND)
        token, _, method = path[4:].partition("/")
        self._api(token, method, body, url.query)
        return None

    def _control(self, verb: str, name: str, query: str, body: bytes | None) -> None:
        """A /__sim/ request: a JSON object body (or none) plus query parameters."""
        if body is None:
            return self._reply(413, {"error": "control API body is too large"})
        try:
            payload = json.loads(body) if body.strip() else {}
        except ValueError as exc:
            return self._reply(400, {"error": f"control API bodies are JSON objects: {exc}"})
        status, answer = self.server.sim.control(verb, name, dict(parse_qsl(query)), payload)
        return self._reply(status, answer)

    def _api(self, token: str, method: str, body: bytes | None, query: str) -> None:
        """Decode the body, answer, or hang up without an answer when a drop or reset is scripted."""
        raw: dict[str, Any] = {}
        uploads: dict[str, Upload] = {}
        refused: ApiError | None = None
        if body is None:
            refused = ApiError(413, "Request Entity Too Large")
        else:
            try:
                raw, uploads = parse_body(self.headers.get("Content-Type", ""), body, query)
            except ApiError as exc:
                refused = exc
        status, answer, hangup = self.server.sim.handle_api(token, method, raw, uploads, refused)
        if hangup == "reset":
            return self._reset()
        if hangup:
            self.close_connection = True
            return None
        return self._reply(status, answer)

    def _reset(self) -> None:
        """Hang up with a TCP reset (RST, not FIN), like a crashed proxy: the client's read fails."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()     # the RST goes when finish() closes the last file on it
        except OSError:
            pass

    def _read_body(self) -> bytes | None:
        """The request body; None when it is over the upload limit (drained, then refused)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            while length > 0 and (chunk := self.rfile.read(min(length, MB))):
                length -= len(chunk)
            return None
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes | None:
        """Chunked bodies, for clients that stream uploads."""
        chunks, total = [], 0
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                break
            total += size
            chunk = self.rfile.read(size)
            self.rfile.readline()
            if total <= MAX_BODY_BYTES:
                chunks.append(chunk)
        return b"".join(chunks) if total <= MAX_BODY_BYTES else None

    def _reply(self, status: int, payload: dict[str, Any] | bytes,
               content_type: str = "application/octet-stream") -> None:
        """JSON (or bytes of `content_type`) with an explicit length, so keep-alive works."""
        if isinstance(payload, bytes):
            data = payload
        else:
            data, content_type = json.dumps(payload).encode(), "application/json"
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True
