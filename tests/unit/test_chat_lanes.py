"""Chat lanes: one chat's updates in order, chats at once up to a bound, and an error that
escapes a handler gives the rest of that chat's queue back without touching other chats."""
from __future__ import annotations

import asyncio
from collections.abc import Callable

from bot.chat_lanes import ChatLanes


async def settle(condition: Callable[[], bool], turns: int = 1000) -> None:
    """Let the loop run until `condition` holds (yields to other tasks, never waits on time)."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the lanes did not get there")


def test_each_chat_is_handled_in_order_and_an_error_gives_the_rest_of_that_chat_back() -> None:
    async def scenario() -> None:
        seen: list[tuple[str, int]] = []

        async def handle(update_id: int, chat: str) -> None:
            seen.append((chat, update_id))
            if update_id == 3:
                raise RuntimeError("the database went away")

        lanes: ChatLanes[str] = ChatLanes(handle)
        for chat, update_id in (("a", 1), ("b", 2), ("a", 3), ("b", 4), ("a", 5), ("b", 6)):
            assert lanes.submit(chat, update_id, chat)
        assert not lanes.submit("a", 5, "a")          # already in flight: not handed out twice
        error = await asyncio.wait_for(lanes.errors.get(), 5)
        await settle(lambda: not lanes.in_flight())

        assert isinstance(error, RuntimeError)
        assert [u for c, u in seen if c == "a"] == [1, 3]      # 5 was given back, not handled
        assert [u for c, u in seen if c == "b"] == [2, 4, 6]
        assert lanes.submit("a", 5, "a")              # a later sweep hands it out again
        await settle(lambda: not lanes.in_flight())
        assert seen[-1] == ("a", 5)
        await lanes.close()

    asyncio.run(scenario())


def test_no_more_chats_than_the_bound_are_handled_at_once_and_close_cancels_the_rest() -> None:
    async def scenario() -> None:
        gate = asyncio.Event()
        running: list[int] = []
        peak = 0

        async def handle(update_id: int, item: None) -> None:
            nonlocal peak
            running.append(update_id)
            peak = max(peak, len(running))
            await gate.wait()
            running.remove(update_id)

        lanes: ChatLanes[None] = ChatLanes(handle, max_chats=2)
        for chat in range(5):
            lanes.submit(chat, chat, None)
        await settle(lambda: len(running) == 2)
        for _ in range(50):                            # give the other three every chance to start
            await asyncio.sleep(0)
        assert peak == 2

        await lanes.close()
        assert lanes.in_flight() == []
        assert [t for t in asyncio.all_tasks() if t.get_name().startswith("chat-lane-")] == []

    asyncio.run(scenario())




def test_an_update_left_for_later_is_handled_again_before_its_chats_next_one_and_frees_its_slot() -> None:
    async def scenario() -> None:
        seen: list[tuple[str, int]] = []
        left_once: set[int] = set()

        async def handle(update_id: int, chat: str) -> float | None:
            seen.append((chat, update_id))
            if update_id == 1 and update_id not in left_once:
                left_once.add(update_id)
                return 0.05                             # Telegram asked this chat to wait
            return None

        lanes: ChatLanes[str] = ChatLanes(handle, max_chats=1)
        for chat, update_id in (("a", 1), ("a", 2), ("b", 3)):
            assert lanes.submit(chat, update_id, chat)
        assert not lanes.submit("a", 1, "a")          # waiting in its lane: still in flight
        await asyncio.wait_for(_until(lambda: not lanes.in_flight()), 5)

        assert [u for c, u in seen if c == "a"] == [1, 1, 2]   # again, and before the chat's next
        assert seen.index(("b", 3)) < seen.index(("a", 2)), "the one slot was free while chat a waited"
        await lanes.close()

    asyncio.run(scenario())


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.01)


def test_close_starts_nothing_new_and_does_not_wait_for_a_lane_waiting_to_try_again() -> None:
    async def scenario() -> None:
        gate = asyncio.Event()
        seen: list[str] = []

        async def handle(update_id: int, chat: str) -> float | None:
            seen.append(chat)
            if chat == "a":
                await gate.wait()                       # on the wire while the intake stops
            if chat == "r":
                return 3600.0                           # Telegram asked this chat to wait an hour
            return None

        lanes: ChatLanes[str] = ChatLanes(handle, max_chats=1)
        lanes.submit("r", 1, "r")
        await _until(lambda: seen == ["r"])
        lanes.submit("a", 2, "a")
        lanes.submit("b", 3, "b")                       # waits for the one slot
        await _until(lambda: seen == ["r", "a"])
        closing = asyncio.create_task(lanes.close(grace_s=30))
        await asyncio.sleep(0)
        gate.set()                                      # "a" finishes within the grace; its slot frees
        await asyncio.wait_for(closing, 5)              # neither the hour nor the grace was waited out

        assert seen == ["r", "a"], "a lane started an update after close() began"
        assert lanes.in_flight() == []

    asyncio.run(scenario())


def test_a_chat_holds_at_most_its_share_of_the_updates_in_flight() -> None:
    async def scenario() -> None:
        gate = asyncio.Event()

        async def handle(update_id: int, chat: str) -> None:
            await gate.wait()

        lanes: ChatLanes[str] = ChatLanes(handle, max_in_flight=10, max_per_chat=3)
        accepted = [lanes.submit("flood", update_id, "flood") for update_id in range(1, 7)]
        assert accepted == [True, True, True, False, False, False]     # the rest stay in the store
        assert lanes.has_room() and lanes.submit("quiet", 100, "quiet")
        gate.set()
        await _until(lambda: not lanes.in_flight())
        assert lanes.submit("flood", 4, "flood"), "a later sweep offers it again"
        await _until(lambda: not lanes.in_flight())
        await lanes.close()

    asyncio.run(scenario())
