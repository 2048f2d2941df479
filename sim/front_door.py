"""A tiny reverse proxy standing in for the load balancer in front of several instances.

PUBLIC_URL points here in the demo and in failover tests, as it would point at a platform's
router: each request goes to the first live backend, and a backend that refuses the
connection is skipped, so KIE's callbacks reach whichever instance is still running.
"""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

import requests

from sim.http_server import SimHTTPServer

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class FrontDoor:
    def __init__(self, backends: list[str], host: str = "127.0.0.1", port: int = 0) -> None:
        self.backends = list(backends)
        door = self

        class Handler(_Handler):
            owner = door

        self.server = SimHTTPServer((host, port), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="front-door", daemon=True)
        self._session = requests.Session()

    def start(self) -> FrontDoor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._session.close()

    def forward(self, method: str, path: str, headers: dict[str, str],
                body: bytes) -> tuple[int, dict[str, str], bytes]:
        for backend in list(self.backends):
            try:
                resp = self._session.request(method, backend + path, headers=headers, data=body, timeout=20,
                                             allow_redirects=False)
            except requests.ConnectionError:
                continue
            out = {k: v for k, v in resp.headers.items() if k.lower() not in HOP_HEADERS}
            return resp.status_code, out, resp.content
        return 502, {"Content-Type": "application/json"}, b'{"error": "no backend answered"}'


class _Handler(BaseHTTPRequestHandler):
    owner: FrontDoor
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True      # headers and body in two writes: no 40 ms wait for an ACK

    def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
        pass

    def _relay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
        status, out, content = self.owner.forward(self.command, self.path, headers, body)
        self.send_response(status)
        for k, v in out.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_POST = _relay  # noqa: N815 - stdlib naming
