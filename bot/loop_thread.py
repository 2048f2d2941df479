"""An asyncio event loop on a daemon thread of its own, as the bot gateway and the checkout desk
each run one: started, handed coroutines by other threads (which wait, bounded, for the result),
stopped and closed. A loop that was never started is only closed, so building a gateway without
starting it leaves nothing for the garbage collector to warn about."""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from typing import Any

JOIN_TIMEOUT_S = 5.0


def run_on_loop(loop: asyncio.AbstractEventLoop, coro: Awaitable[Any], timeout: float) -> Any:
    """Run a coroutine on `loop` from another thread and wait for it."""
    async def call() -> Any:
        return await coro

    return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout)


class LoopThread:
    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def run(self, coro: Awaitable[Any], timeout: float) -> Any:
        """Run `coro` on this loop and wait for it (never from the loop's own thread)."""
        return run_on_loop(self.loop, coro, timeout)

    def stop(self) -> None:
        """Stop the loop and close it (a loop still busy after JOIN_TIMEOUT_S is left to exit
        with the process: closing a running loop is not allowed)."""
        if self._thread.ident is None:
            self.loop.close()
            return
        if not self._thread.is_alive():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=JOIN_TIMEOUT_S)
        if not self._thread.is_alive():
            self.loop.close()
