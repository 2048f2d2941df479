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
from tests.support.waiting import wait_until


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


@pytest.fixture
def leader_and_standby(spawn: Callable[..., Process]) -> Callable[..., tuple[Process, Process]]:
    """Two instances `<name>-a` and `<name>-b` with the same `extra` environment, returned as
    (leader, standby) once both answer /health and exactly one of them leads."""
    def make(name: str, **extra: str) -> tuple[Process, Process]:
        a, b = spawn(f"{name}-a", **extra), spawn(f"{name}-b", **extra)
        wait_until(lambda: a.health() and b.health(), timeout=30, what="both instances answer /health")
        wait_until(lambda: a.active() != b.active(), timeout=10, what="exactly one instance active")
        return (a, b) if a.active() else (b, a)

    return make
