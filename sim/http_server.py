"""The simulators' HTTP server: a ThreadingHTTPServer whose accept can never hang.

serve_forever() selects on the listening socket and then accepts; once in a full suite run the
KIE simulator's accept blocked for good after select() had reported a connection, and with it
serve_forever() and the test's stop() (shutdown() waits for serve_forever to notice). The
listening socket gets a timeout here, so accept() gives up after ACCEPT_TIMEOUT_S and
serve_forever() goes round again. Accepted connections stay blocking (Python makes them so
when the listening socket has a timeout); each handler sets its own.
"""
from __future__ import annotations

from http.server import ThreadingHTTPServer

ACCEPT_TIMEOUT_S = 0.5


class SimHTTPServer(ThreadingHTTPServer):
    """Daemon handler threads (a forgotten stop() never hangs interpreter exit), a deep accept
    queue (a burst of a bot's connections is not reset), and an accept that cannot hang."""

    daemon_threads = True
    request_queue_size = 256

    def server_activate(self) -> None:
        super().server_activate()
        self.socket.settimeout(ACCEPT_TIMEOUT_S)
