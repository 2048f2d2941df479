"""KIE's account pace (kie.client.SlidingWindow): a turn taken ahead of its call holds room, and
the call counts from when it goes out, so taking turns early never lets more calls reach KIE in
one window than the limit."""
from __future__ import annotations

from kie.client import SlidingWindow


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_turns_taken_fill_the_window_until_it_passes() -> None:
    clock = Clock()
    window = SlidingWindow(2, 10.0, clock)
    window.take()
    window.take()
    assert window.room_in() == 10.0
    clock.now = 9.5
    assert window.room_in() == 0.5
    clock.now = 10.0
    assert window.room_in() == 0.0


def test_a_call_made_after_its_turn_was_taken_counts_from_when_it_went_out() -> None:
    clock = Clock()
    window = SlidingWindow(1, 10.0, clock)
    turn = window.take()
    clock.now = 4.0                 # the caller recorded its job, then sends
    window.use(turn)
    clock.now = 10.0
    assert window.room_in() == 4.0  # KIE saw the call at 4: no room before 14


def test_a_turn_never_used_frees_its_room_when_the_window_passes() -> None:
    clock = Clock()
    window = SlidingWindow(1, 10.0, clock)
    window.take()                   # the job's move was refused: no call follows
    clock.now = 10.0
    assert window.room_in() == 0.0
    window.take()
    assert window.room_in() == 10.0


def test_a_turn_held_until_it_aged_out_goes_only_if_there_is_room_now() -> None:
    clock = Clock()
    window = SlidingWindow(2, 10.0, clock)
    held = window.take()            # t=0: the job then waits (a work slot, its database move)
    clock.now = 1.0
    assert window.use(window.take())
    clock.now = 10.0                # the held turn ages out; its room goes to another call
    assert window.use(window.take())
    clock.now = 10.5
    assert not window.use(held)     # two calls in the last 10 s already: this one must not go
    clock.now = 11.0
    assert window.use(held)         # the call at 1 has aged out: room again
    assert window.room_in() == 9.0


def test_try_take_holds_room_only_when_there_is_some() -> None:
    clock = Clock()
    window = SlidingWindow(1, 10.0, clock)
    assert window.try_take() is not None
    assert window.try_take() is None        # take() would wait 10 s here
    clock.now = 10.0
    assert window.try_take() is not None
