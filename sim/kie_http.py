"""The HTTP plumbing both simulated KIE hosts share, and the faults that live on the wire.

Owns the request and reply records, the threading server, the request handler, and the forced
replies that are not KIE's envelope: a proxy's HTML error page, an empty or odd body, a body cut
short, a reset connection. What KIE itself answers is decided in sim/kie.py, never here.
"""
from __future__ import annotations

import json
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from http.client import responses as HTTP_REASONS  # noqa: N812 - a constant table, named as one
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sim.http_server import SimHTTPServer

# How a forced reply is written: KIE's envelope (the default), or what a proxy in front of KIE,
# a broken KIE or a broken network gives instead (see `force_next`).
FORCE_MODES = ("envelope", "html", "empty", "raw", "truncated", "reset")
HTML_PAGE = ("<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
             "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
             "</body>\r\n</html>\r\n")


@dataclass
class Request:
    """One HTTP request as the sim's routing sees it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    logged_body: Any = None

    def json(self) -> Any:
        """The body as JSON, or None when it is empty or not JSON."""
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None


@dataclass
class Reply:
    """What to write back: a status, a body and its headers."""

    status: int
    body: bytes
    content_type: str = "application/json"
    code: int | None = None  # the envelope code, for the call log
    headers: dict[str, str] = field(default_factory=dict)
    # "truncated": announce the whole body, send half, close; "reset": close with a TCP RST
    # and no answer at all. None: a normal answer.
    abort: str | None = None


@dataclass(frozen=True)
class Forced:
    """One forced reply: a KIE envelope `code`/`msg`, or a fault `mode` with HTTP `code`."""

    code: int
    msg: str
    mode: str = "envelope"
    body: str = ""


class Server(SimHTTPServer):
    """The KIE simulator's server (a deep accept queue: the default of 5 resets connections as
    soon as a bot fires a burst of concurrent requests)."""


def make_handler(route: Callable[[Request], Reply]) -> type[BaseHTTPRequestHandler]:
    """A request handler class that hands every request to `route`; shared by both hosts."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "kie-sim/1.0"
        disable_nagle_algorithm = True      # headers and body in two writes: no 40 ms wait for an ACK
        timeout = 30

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

        def _serve(self, method: str) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = route(Request(method, parts.path, query, headers, body))
            if reply.abort == "reset":
                self._reset()
                return
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if method == "HEAD":
                return
            if reply.abort == "truncated":
                self.wfile.write(reply.body[:len(reply.body) // 2])
                self.close_connection = True
                return
            self.wfile.write(reply.body)

        def _reset(self) -> None:
            """Drop the connection with an RST (linger 0) without writing a byte of answer."""
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_HEAD(self) -> None:
            self._serve("HEAD")

    return Handler




def fault_reply(forced: Forced) -> Reply:
    """The reply for a forced fault other than "envelope" and "truncated" (which need KIE's
    envelope and are built by the sim)."""
    status = forced.code
    match forced.mode:
        case "html":
            page = HTML_PAGE.format(status=status, reason=HTTP_REASONS.get(status, "Error"))
            return Reply(status, page.encode(), "text/html", code=status)
        case "empty":
            return Reply(status, b"", code=status)
        case "raw":
            return Reply(status, forced.body.encode(), code=status)
        case "reset":
            return Reply(0, b"", code=None, abort="reset")
    raise ValueError(f"not a wire fault: {forced.mode!r}")
