"""WorkSlots with real threads: the bound holds, waiting on the outside world frees a slot."""
from __future__ import annotations

import threading

import pytest

from actors.work_slots import WorkSlots


def run_in_threads(n: int, body: object) -> None:
    threads = [threading.Thread(target=body) for _ in range(n)]  # type: ignore[arg-type]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
        assert not t.is_alive()


def test_no_more_than_size_bodies_run_at_once() -> None:
    slots = WorkSlots(3)
    inside = 0
    peak = 0
    lock = threading.Lock()
    three_inside = threading.Barrier(3, timeout=5)

    def body() -> None:
        nonlocal inside, peak
        with slots.held():
            with lock:
                inside += 1
                peak = max(peak, inside)
            try:
                three_inside.wait()     # the first three meet here; later ones find it broken
            except threading.BrokenBarrierError:
                pass
            with lock:
                inside -= 1

    run_in_threads(12, body)
    assert peak == 3 and slots.most_busy == 3
    assert slots.busy == 0 and slots.waiting == 0


def test_outside_gives_the_slot_to_someone_else_and_takes_one_back() -> None:
    slots = WorkSlots(1)
    outside = threading.Event()
    other_ran = threading.Event()

    def waiter() -> None:
        with slots.held():
            with slots.outside():
                outside.set()
                assert other_ran.wait(5), "the slot was not given back while waiting outside"
            assert slots.busy == 1

    def other() -> None:
        assert outside.wait(5)
        with slots.held():
            other_ran.set()

    threads = [threading.Thread(target=waiter), threading.Thread(target=other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert other_ran.is_set() and slots.busy == 0


def test_outside_without_a_slot_is_a_plain_block() -> None:
    slots = WorkSlots(1)
    with slots.outside():
        assert slots.busy == 0
    assert slots.busy == 0


def test_closing_is_visible_to_whoever_gets_a_slot_next() -> None:
    slots = WorkSlots(2)
    assert not slots.closed
    slots.close()
    with slots.held():
        assert slots.closed


def test_a_slot_count_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        WorkSlots(0)
