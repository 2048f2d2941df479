"""Builds real kiebot instances against the simulators for integration and system tests.

`Instance` is a Runtime in this process (for flows), `spawn_instance` a real `kiebot run`
process (for failover), both from `sim.cluster` and configured only through the environment
contract. What is particular to tests lives here: fast polling and a short delivery grace.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import requests

from config.settings import Settings
from runtime import Runtime
from sim.cluster import ROOT, KiebotProcess, free_port, instance_env, sim_endpoints, spawn_kiebot
from sim.kie import KieSim
from sim.telegram import TelegramSim

__all__ = ["ROOT", "Instance", "Process", "free_port", "sim_instance_env", "spawn_instance", "start_instance"]

# Tests poll KIE quickly and trust an unfinished delivery claim briefly, so that they run fast.
TEST_KNOBS = {"KIEBOT_POLL_BASE_S": "0.1", "KIEBOT_DELIVERY_GRACE_S": "1"}
Process = KiebotProcess


def sim_instance_env(database_url: str, kie: KieSim, telegram: TelegramSim, *, port: int, instance_id: str,
             callbacks: bool = True, **extra: str) -> dict[str, str]:
    """One instance's environment; with `callbacks`, KIE calls the instance itself back."""
    return instance_env(database_url, **sim_endpoints(kie, telegram), port=port, instance_id=instance_id,
                        public_url=f"http://127.0.0.1:{port}" if callbacks else None, **{**TEST_KNOBS, **extra})


@dataclass
class Instance:
    runtime: Runtime
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> requests.Response:
        return requests.get(self.url + path, timeout=5)


def start_instance(database_url: str, kie: KieSim, telegram: TelegramSim, *, instance_id: str = "it-1",
                   callbacks: bool = True, **extra: str) -> Instance:
    port = free_port()
    env = sim_instance_env(database_url, kie, telegram, port=port, instance_id=instance_id, callbacks=callbacks, **extra)
    runtime = Runtime(Settings.from_env(env), database_url)
    runtime.start()
    return Instance(runtime, port)


def spawn_instance(database_url: str, kie: KieSim, telegram: TelegramSim, tmp: Path, instance_id: str,
                   **extra: str) -> Process:
    """A `kiebot run` process logging to `tmp/<instance_id>.log`."""
    env = sim_instance_env(database_url, kie, telegram, port=free_port(), instance_id=instance_id, **extra)
    return spawn_kiebot(instance_id, env, tmp / f"{instance_id}.log")
