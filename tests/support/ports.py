"""A loopback port that refuses connections for as long as a test needs it.

Closing a server to free its port and then counting on the refusal is a race once the suite runs
on several workers: another process may be given the same port meanwhile. A socket that is bound
but never listens keeps the port for itself, and the kernel answers every connection with a reset.
"""
from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A port on 127.0.0.1 where every connection is refused, until the block ends."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]
    finally:
        holder.close()
