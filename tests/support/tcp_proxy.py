"""A TCP forwarder to Postgres that a test can cut, freeze and restore.

cut(): the database "goes away" for the instances behind it (connections reset, new ones
refused) without touching the server. freeze(): a silent partition, where no byte passes in
either direction but every socket stays open, so neither side's kernel notices anything."""
from __future__ import annotations

import socket
import threading
from urllib.parse import parse_qs, urlsplit, urlunsplit


def upstream_address(database_url: str) -> tuple[int, str | tuple[str, int]]:
    """(family, address) of the server in a postgresql:// URL (unix socket dir or host:port)."""
    parts = urlsplit(database_url)
    host = parse_qs(parts.query).get("host", [parts.hostname or "127.0.0.1"])[0]
    port = parts.port or 5432
    if host.startswith("/"):
        return socket.AF_UNIX, f"{host}/.s.PGSQL.{port}"
    return socket.AF_INET, (host, port)


class PgProxy:
    def __init__(self, database_url: str) -> None:
        self.family, self.upstream = upstream_address(database_url)
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        parts = urlsplit(database_url)
        user = parts.username or "postgres"
        self.url = urlunsplit(("postgresql", f"{user}@127.0.0.1:{self.port}", parts.path, "", ""))
        self._open = threading.Event()
        self._open.set()
        self._flowing = threading.Event()   # cleared while frozen
        self._flowing.set()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        """Reset every connection and refuse new ones until restore()."""
        self._open.clear()
        with self._lock:
            for s in list(self._sockets):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self._sockets.clear()

    def restore(self) -> None:
        self._open.set()

    def freeze(self) -> None:
        """Stop forwarding in both directions, keeping every socket open, until thaw()."""
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        self._closed = True
        self._flowing.set()
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._flowing.wait()    # frozen: the new client waits, connected to nothing
            if not self._open.is_set() or self._closed:
                client.close()
                continue
            upstream = socket.socket(self.family, socket.SOCK_STREAM)
            try:
                upstream.connect(self.upstream)
            except OSError:
                client.close()
                upstream.close()
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self._flowing.wait()    # frozen: hold the bytes, keep both sockets open
                dst.sendall(data)
        except OSError:
            pass
        finally:
            # shutdown() before close(): a bare close() does not wake the other direction's
            # blocked recv(), which would keep the socket (and the server's session) alive.
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            with self._lock:
                self._sockets.discard(src)
                self._sockets.discard(dst)
