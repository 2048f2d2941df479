"""Handled marks: noted at once, written in batches, counted as taken until written, and kept
(not lost, not written twice) when a write fails."""
from __future__ import annotations

import asyncio

import pytest

from bot.handled_marks import HandledMarks


class Store:
    """What a write reaches: the batches written, and a switch to make the next write fail."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.fail_next = False
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()

    async def write(self, update_ids: list[int]) -> None:
        self.entered.set()
        await self.release.wait()
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("the database went away")
        self.batches.append(list(update_ids))


def test_marks_noted_meanwhile_go_in_one_batch_and_count_as_taken_until_written() -> None:
    async def scenario() -> None:
        store = Store()
        marks = HandledMarks(store.write)
        store.release.clear()
        writer = asyncio.create_task(marks.run())
        marks.note(1)
        await store.entered.wait()                  # [1] is being written
        marks.note(2)
        marks.note(3)
        assert sorted(marks.unwritten()) == [1, 2, 3]
        store.release.set()
        for _ in range(100):
            if not marks.unwritten():
                break
            await asyncio.sleep(0)
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        assert store.batches == [[1], [2, 3]]
        assert marks.unwritten() == []

    asyncio.run(scenario())


def test_a_failed_write_keeps_its_marks_for_the_next_one() -> None:
    async def scenario() -> None:
        store = Store()
        marks = HandledMarks(store.write, max_batch=2)
        for update_id in (1, 2, 3):
            marks.note(update_id)
        store.fail_next = True
        with pytest.raises(ConnectionError):
            await marks.flush()
        assert marks.unwritten() == [1, 2, 3]       # in order, none lost
        await marks.flush()
        assert store.batches == [[1, 2], [3]]
        assert marks.unwritten() == []

    asyncio.run(scenario())
