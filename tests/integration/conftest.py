"""Simulator and instance fixtures for integration tests."""
from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from sim.kie import KieSim
from sim.telegram import TelegramSim
from tests.support.cdp import Chromium
from tests.support.harness import Instance, start_instance


@pytest.fixture
def kie() -> Iterator[KieSim]:
    with KieSim(default_duration_s=0.2) as sim:
        yield sim


@pytest.fixture
def telegram() -> Iterator[TelegramSim]:
    with TelegramSim() as sim:
        yield sim


@pytest.fixture
def instance_factory(database_url: str, kie: KieSim, telegram: TelegramSim) -> Iterator[Callable[..., Instance]]:
    started: list[Instance] = []

    def make(**kwargs: str) -> Instance:
        inst = start_instance(database_url, kie, telegram, instance_id=f"it-{len(started) + 1}", **kwargs)
        started.append(inst)
        return inst

    yield make
    for inst in reversed(started):
        inst.runtime.stop()




@pytest.fixture
def bot(instance_factory: Callable[..., Instance]) -> Instance:
    """One running, leading instance with KIE callbacks on."""
    from tests.support.waiting import wait_until

    inst = instance_factory()
    wait_until(lambda: inst.runtime.status.active, timeout=10, what="instance becomes leader")
    return inst


@pytest.fixture
def browser() -> Iterator[Chromium]:
    """Headless Chromium for the simulator's web chat page."""
    chromium = Chromium()       # Debian's /usr/bin/chromium (`make browser` installs it)
    try:
        yield chromium
    finally:
        chromium.close()
