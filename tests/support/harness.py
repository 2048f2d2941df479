"""Builds real kiebot instances against the simulators for integration tests.

`Instance` is a Runtime in this process (for flows), `spawn_instance` a real `kiebot run`
process (for failover). Both are configured only through the environment contract.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from config.settings import Settings
from runtime import Runtime
from sim.kie import KieSim
from sim.telegram import TelegramSim

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def instance_env(database_url: str, kie: KieSim, telegram: TelegramSim, *, port: int, instance_id: str,
                 callbacks: bool = True, **extra: str) -> dict[str, str]:
    env = {
        "TELEGRAM_BOT_TOKEN": telegram.token, "TELEGRAM_API_URL": telegram.url,
        "KIE_API_KEY": kie.api_key, "KIE_API_URL": kie.url, "KIE_UPLOAD_URL": kie.upload_url,
        "DATABASE_URL": database_url, "HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(port),
        "INSTANCE_ID": instance_id, "KIEBOT_POLL_BASE_S": "0.1", "KIEBOT_DELIVERY_GRACE_S": "1",
    }
    if callbacks:
        env["PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    env.update(extra)
    return env


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
    env = instance_env(database_url, kie, telegram, port=port, instance_id=instance_id, callbacks=callbacks, **extra)
    runtime = Runtime(Settings.from_env(env), database_url)
    runtime.start()
    return Instance(runtime, port)


@dataclass
class Process:
    proc: subprocess.Popen[bytes]
    port: int
    instance_id: str
    log_path: Path
    env: dict[str, Any] = field(default_factory=dict)

    def health(self) -> dict[str, Any] | None:
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/health", timeout=1).json()  # type: ignore[no-any-return]
        except requests.RequestException:
            return None

    def active(self) -> bool:
        h = self.health()
        return bool(h and h["active"])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def spawn_instance(database_url: str, kie: KieSim, telegram: TelegramSim, tmp: Path, instance_id: str,
                   **extra: str) -> Process:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIEBOT_", "TELEGRAM_", "KIE_"))}
    env.update(instance_env(database_url, kie, telegram, port=port, instance_id=instance_id, **extra))
    log_path = tmp / f"{instance_id}.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "cli", "run"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    return Process(proc, port, instance_id, log_path, env)
