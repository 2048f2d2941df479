"""The simulators' HTTP server: an accept that finds nothing to take gives up instead of holding
serve_forever (and every stop()) for good, and connections are still served afterwards."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler

import requests

from sim.http_server import SimHTTPServer


class Hello(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")


def test_an_accept_with_no_connection_waiting_returns_and_the_server_still_serves() -> None:
    server = SimHTTPServer(("127.0.0.1", 0), Hello)
    try:
        # What serve_forever does once select() has reported a connection that is gone by now.
        accepting = threading.Thread(target=server._handle_request_noblock, daemon=True)
        accepting.start()
        accepting.join(timeout=10)
        assert not accepting.is_alive(), "accept() blocked with no connection to take"

        serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        serving.start()
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        assert requests.get(url, timeout=5).text == "hello"
    finally:
        server.shutdown()
        server.server_close()
