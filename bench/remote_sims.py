"""`SimHost`: the two simulators in a child process (bench/simhost.py), seen from the bench and
driven over their HTTP APIs, for scenarios whose pipeline runs inside the bench process, so
the simulators do not share its GIL. Talks to 127.0.0.1 only; every wait is bounded."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import requests

from bench.cpu import process_cpu_seconds
from bench.runs import ROOT, run_log


@dataclass
class SimHost:
    """bench/simhost.py: both simulators in a child process, driven over their HTTP APIs."""

    proc: subprocess.Popen[str]
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(cls, *, kie_duration_s: float = 0.0, kie_rate_limits: bool = False, telegram_limits: bool = False,
              chats: list[int] | None = None, timeout: float = 60.0) -> SimHost:
        config = {"kie_duration_s": kie_duration_s, "kie_rate_limits": kie_rate_limits,
                  "telegram_limits": telegram_limits, "chats": chats or []}
        err = open(run_log("simhost"), "ab")  # noqa: SIM115 - lives as long as the child
        proc = subprocess.Popen([sys.executable, "-m", "bench.simhost", json.dumps(config)], cwd=ROOT,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)
        host = cls(proc)
        deadline = time.monotonic() + timeout
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line or time.monotonic() > deadline:
            host.stop()
            raise RuntimeError("the simulator host did not start; see bench/.runs/simhost.log")
        host.info = json.loads(line)
        return host

    @property
    def kie_url(self) -> str:
        return str(self.info["kie_url"])

    @property
    def telegram_url(self) -> str:
        return str(self.info["telegram_url"])

    @property
    def telegram_token(self) -> str:
        return str(self.info["telegram_token"])

    def env(self) -> dict[str, str]:
        return {"kie_url": self.kie_url, "kie_upload_url": self.info["kie_upload_url"],
                "kie_key": self.info["kie_key"], "telegram_url": self.telegram_url,
                "telegram_token": self.telegram_token}

    def telegram_calls(self, method: str | None = None) -> list[dict[str, Any]]:
        params = {"method": method} if method else {}
        resp = requests.get(f"{self.telegram_url}/__sim/calls", params=params, timeout=120)
        resp.raise_for_status()
        return list(resp.json()["calls"])

    def kie_callbacks(self) -> list[dict[str, Any]]:
        resp = requests.get(f"{self.kie_url}/__sim/callbacks", timeout=120)
        resp.raise_for_status()
        return list(resp.json()["result"])

    def kie_calls(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        params = {"endpoint": endpoint} if endpoint else {}
        resp = requests.get(f"{self.kie_url}/__sim/calls", params=params, timeout=120)
        resp.raise_for_status()
        return list(resp.json()["result"])

    def reset(self) -> None:
        """Forget calls and tasks of both sims, keeping the chats (re-created by the host)."""
        requests.post(f"{self.info['control_url']}/reset", timeout=60).raise_for_status()

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=15)
            except (subprocess.TimeoutExpired, OSError, AssertionError):
                self.proc.kill()
                self.proc.wait(timeout=10)
