"""`SimHost`: the two simulators in a child process (bench/simhost.py), seen from the bench and
driven over their HTTP APIs, for scenarios whose pipeline runs inside the bench process, so
the simulators do not share its GIL; and `TelegramStars`, the Telegram simulator's Stars payments
driven over HTTP (from any process). Talks to 127.0.0.1 only; every wait is bounded."""
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

    @property
    def stars(self) -> TelegramStars:
        """The Telegram simulator's Stars payments, as a bot and as its paying users see them."""
        return TelegramStars(self.telegram_url, self.telegram_token)

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


@dataclass(frozen=True)
class TelegramStars:
    """Telegram Stars in the Telegram simulator (sim/telegram_payments.py), driven over HTTP: the
    bot's createInvoiceLink and the /__sim/ routes by which users pay and Telegram redelivers.
    Holds only addresses, so a payer process of its own can use it; each call may bring a
    requests.Session to keep its connection."""

    url: str
    token: str

    def create_invoice_link(self, *, title: str, description: str, payload: str, stars: int) -> str:
        """createInvoiceLink through the Bot API, as a bot would: a link any user may pay, any
        number of times."""
        resp = requests.post(f"{self.url}/bot{self.token}/createInvoiceLink", timeout=30,
                             json={"title": title, "description": description, "payload": payload,
                                   "currency": "XTR", "prices": [{"label": title, "amount": stars}]})
        body = resp.json()
        if not body.get("ok"):
            raise RuntimeError(f"createInvoiceLink refused: {body.get('description')}")
        return str(body["result"])

    def pay(self, user_id: int, link: str, http: requests.Session | None = None) -> dict[str, Any]:
        """`user_id` opens the invoice `link` and presses Pay: the attempt as it starts (its
        `query_id`; the bot gets a pre_checkout_query)."""
        return dict(self._control("POST", "pay", {"user_id": user_id, "link": link}, http)["attempt"])

    def wait_for_payment(self, query_id: str, timeout: float = 15.0,
                         http: requests.Session | None = None) -> dict[str, Any]:
        """The attempt once it is paid, declined or expired (the simulator's deadline is 10 s)."""
        return dict(self._control("POST", "wait_for_payment", {"query_id": query_id, "timeout": timeout}, http,
                                  read_timeout=timeout + 30)["attempt"])

    def attempts(self) -> list[dict[str, Any]]:
        """Every press of Pay since the last reset, oldest first, each with its outcome and
        `answered_after_s` (pre_checkout_query queued → the bot's answer)."""
        return list(self._control("GET", "payment_attempts", {}, None)["attempts"])

    def redeliver(self, charge_id: str, http: requests.Session | None = None) -> int:
        """The successful_payment of `charge_id` again, as a new update; its update_id."""
        return int(self._control("POST", "redeliver_successful_payment", {"charge_id": charge_id}, http)["update_id"])

    def charges(self) -> list[dict[str, Any]]:
        """Every Stars charge the simulator made since the last reset."""
        return list(self._control("GET", "star_payments", {}, None)["payments"])

    def _control(self, verb: str, route: str, body: dict[str, Any], http: requests.Session | None,
                 read_timeout: float = 120.0) -> dict[str, Any]:
        """One request to the /__sim/ control API; any status but 200 raises."""
        send = http.request if http is not None else requests.request
        resp = send(verb, f"{self.url}/__sim/{route}", json=body if verb == "POST" else None,
                    timeout=(10, read_timeout))
        if resp.status_code != 200:
            raise RuntimeError(f"/__sim/{route} answered {resp.status_code}: {resp.text[:300]}")
        return dict(resp.json())
