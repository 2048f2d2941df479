"""A real HttpGateway on its own (no leader, no intake), for tests of the HTTP edge, and raw
socket helpers for requests that no well-behaved client would send."""
from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from http_gateway import GatewayHooks, HttpGateway
from storage.db import Database
from telemetry.metrics import Metrics

WEBHOOK_SECRET = "edge-webhook-secret"


@contextmanager
def running_gateway(db: Database, **options: Any) -> Iterator[HttpGateway]:
    """A started gateway on a free port; nothing consumes what it stores, so the inboxes show it."""
    hooks = GatewayHooks(status=lambda: {"status": "ok"}, ready=lambda: True,
                         callback_stored=lambda job_id: None, update_stored=lambda: None)
    gateway = HttpGateway("127.0.0.1", 0, db, Metrics(), hooks, instance_id="edge-1",
                          webhook_secret=WEBHOOK_SECRET, **options)
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()


def url(gateway: HttpGateway, path: str) -> str:
    return f"http://127.0.0.1:{gateway.port}{path}"


def connect(gateway: HttpGateway, sent: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=5)
    if sent:
        sock.sendall(sent)
    return sock


def closed_by_server(sock: socket.socket, received: bytearray) -> bool:
    """Without blocking: whether the server closed `sock`; what it sent is added to `received`."""
    while select.select([sock], [], [], 0)[0]:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return True
        if not chunk:
            return True
        received += chunk
    return False


def exchange(gateway: HttpGateway, sent: bytes) -> bytes:
    """Send raw bytes and read the whole answer (the gateway closes after each one)."""
    return exchange_at(gateway.port, sent)


def exchange_at(port: int, sent: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(sent)
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
        return bytes(received)
