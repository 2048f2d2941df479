"""Chat lanes: the updates of one chat are handled one after another, different chats at once.

A reply waits inside its handler for the chat's send slot (about a second in a private chat,
three in a group), so handling every update in one line would let one busy chat stall all the
others. Each chat key (the chat id, or the user id for updates without a chat) gets its own
lane: a queue and one asyncio worker that drains it in order. At most `max_chats` workers
handle updates at once; the others wait for a turn. (Pre-checkout queries, which Telegram
cancels after 10 s, do not wait here: bot.checkout_desk answers them.)

The lanes also remember which updates are in flight, so the intake's next sweep of the stored
updates does not hand them out twice, and bound them: MAX_IN_FLIGHT in all, MAX_PER_CHAT in one
chat's lane, so that a chat flooding the bot (or waiting out a long 429 while its user keeps
writing) leaves its surplus in the store and cannot take every place from the other chats.
A handler may ask for its update to be handled again after a wait (Telegram asked the chat to
wait): it stays at the head of its lane, so the chat's later updates keep their order behind
it. An error the handler lets through abandons the rest of
that chat's queue (those updates go back to the store and come again, still in order) and is
reported on `errors` for the intake to act on.
"""
from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")

MAX_CHATS_AT_ONCE = 256     # workers handling an update at the same moment; more chats wait
MAX_IN_FLIGHT = 2000        # updates taken from the store and not finished; the sweep stops there
MAX_PER_CHAT = 50           # of those, queued in one chat's lane: a flood stays in the store

# Handles one update; returns None when it is finished with, or the seconds after which the
# same update is to be handled again (the chat's later updates wait behind it meanwhile).
Handler = Callable[[int, T], Awaitable[float | None]]


class ChatLanes(Generic[T]):
    """Per-chat queues of (update_id, item), each drained in order by its own worker task."""

    def __init__(self, handle: Handler[T], max_chats: int = MAX_CHATS_AT_ONCE,
                 max_in_flight: int | None = None, max_per_chat: int | None = None) -> None:
        self._handle = handle
        self._slots = asyncio.Semaphore(max_chats)
        self._max_in_flight = MAX_IN_FLIGHT if max_in_flight is None else max_in_flight
        self._max_per_chat = MAX_PER_CHAT if max_per_chat is None else max_per_chat
        self._lanes: dict[Hashable, collections.deque[tuple[int, T]]] = {}
        self._workers: dict[Hashable, asyncio.Task[None]] = {}
        self._in_flight: set[int] = set()
        self._resting: set[Hashable] = set()     # lanes waiting to handle their first update again
        self.errors: asyncio.Queue[Exception] = asyncio.Queue()
        self._closing = False

    def in_flight(self) -> list[int]:
        """The update_ids taken and not finished (a copy: the store is asked to skip them)."""
        return list(self._in_flight)

    def has_room(self) -> bool:
        return len(self._in_flight) < self._max_in_flight

    def submit(self, key: Hashable, update_id: int, item: T) -> bool:
        """Queue an update on its chat's lane; False when it is already in flight, or the chat
        has MAX_PER_CHAT queued (it stays in the store, and a later sweep offers it again)."""
        if update_id in self._in_flight or len(self._lanes.get(key, ())) >= self._max_per_chat:
            return False
        self._in_flight.add(update_id)
        self._lanes.setdefault(key, collections.deque()).append((update_id, item))
        if key not in self._workers:
            self._workers[key] = asyncio.create_task(self._drain(key), name=f"chat-lane-{key}")
        return True

    async def close(self, grace_s: float = 0.0) -> None:
        """Stop: no lane starts another update; the ones being handled get `grace_s` to finish
        (so a reply already on the wire is recorded as handled, not handled again by the next
        leader), then every worker is cancelled (a handler stopped midway, or a lane waiting to
        handle its update again, leaves its update in the store)."""
        self._closing = True
        workers = list(self._workers.values())
        busy = [worker for key, worker in self._workers.items() if key not in self._resting]
        if grace_s > 0 and busy:
            await asyncio.wait(busy, timeout=grace_s)
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._workers.clear()
        self._lanes.clear()
        self._in_flight.clear()
        self._resting.clear()

    async def _drain(self, key: Hashable) -> None:
        lane = self._lanes[key]
        while lane and not self._closing:
            update_id, item = lane[0]
            async with self._slots:
                if self._closing:       # closed while this lane waited for a slot: start nothing
                    break
                try:
                    again_in = await self._handle(update_id, item)
                except Exception as exc:  # noqa: BLE001 - reported to the intake, which decides
                    self._abandon(key)
                    self.errors.put_nowait(exc)
                    return
            if again_in is not None:
                # Handled again after the wait, before the chat's later updates; the slot is
                # free for other chats meanwhile, and a closing intake does not wait for it.
                self._resting.add(key)
                try:
                    await asyncio.sleep(again_in)
                finally:
                    self._resting.discard(key)
                continue
            lane.popleft()
            self._in_flight.discard(update_id)
        # No await between the empty check and here: nothing can join this lane meanwhile.
        del self._workers[key], self._lanes[key]

    def _abandon(self, key: Hashable) -> None:
        """Give the chat's unfinished updates back to the store; a later sweep takes them again."""
        for update_id, _ in self._lanes.pop(key):
            self._in_flight.discard(update_id)
        del self._workers[key]
