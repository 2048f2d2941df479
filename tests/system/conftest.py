"""Fixtures for real `kiebot run` processes."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sim.cluster import stop_all
from sim.kie import KieSim
from sim.telegram import TelegramSim
from tests.integration.conftest import kie, telegram  # noqa: F401 - shared simulator fixtures
from tests.support.harness import Process, spawn_instance


@pytest.fixture
def spawn(database_url: str, kie: KieSim, telegram: TelegramSim,  # noqa: F811
          tmp_path: Path) -> Iterator[Callable[..., Process]]:
    procs: list[Process] = []

    def make(instance_id: str, **extra: str) -> Process:
        proc = spawn_instance(database_url, kie, telegram, tmp_path, instance_id, **extra)
        procs.append(proc)
        return proc

    yield make
    stop_all(procs, timeout=20)     # nothing outlives the test
