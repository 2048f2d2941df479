"""/health, /ready and /metrics: fast and honest, the database down included."""
from __future__ import annotations

import time
from typing import Callable, Iterator

import pytest
import requests

from sim.kie import KieSim
from sim.telegram import TelegramSim
from tests.support.harness import Instance, start_instance
from tests.support.tcp_proxy import PgProxy
from tests.support.waiting import wait_until


def test_health_reports_the_contract_fields(bot: Instance) -> None:
    health = bot.get("/health").json()
    assert set(health) == {"status", "active", "instance_id", "epoch", "queue_depth", "db"}
    assert health["status"] == "ok" and health["active"] is True and health["db"] == "ok"
    assert isinstance(health["epoch"], int) and health["instance_id"] == "it-1"
    assert bot.get("/ready").status_code == 200


def test_metrics_show_jobs_by_state_and_deliveries(bot: Instance, telegram: TelegramSim) -> None:
    telegram.user_sends(42, "/imagine a metric")
    telegram.wait_for_chat(42, lambda c: any(m.media == "photo" for m in c), timeout=10)
    wait_until(lambda: 'kiebot_deliveries_total{outcome="success"} 1.0' in bot.get("/metrics").text)
    text = bot.get("/metrics").text
    assert 'kiebot_jobs{state="delivered"} 1.0' in text
    assert "kiebot_leader_active 1.0" in text


def test_unknown_routes_answer_404(bot: Instance) -> None:
    assert bot.get("/nope").status_code == 404
    assert requests.post(f"{bot.url}/kie/callback/abc", data=b"{}", timeout=5).status_code == 404


@pytest.fixture
def proxied(database_url: str, kie: KieSim, telegram: TelegramSim) -> Iterator[tuple[Instance, PgProxy]]:
    proxy = PgProxy(database_url)
    inst = start_instance(proxy.url, kie, telegram)
    yield inst, proxy
    proxy.restore()
    inst.runtime.stop()
    proxy.close()


def test_with_the_database_down_health_stays_fast_and_says_so_and_leadership_ends(
        proxied: tuple[Instance, PgProxy]) -> None:
    inst, proxy = proxied
    wait_until(lambda: inst.get("/health").json()["active"], timeout=10, what="active")
    proxy.cut()
    down: Callable[[], bool] = lambda: (h := inst.get("/health").json())["db"] == "down" and not h["active"]  # noqa: E731
    wait_until(down, timeout=10, what="health reports the database down and no leadership")
    started = time.monotonic()
    resp = inst.get("/health")
    assert resp.status_code == 200 and time.monotonic() - started < 1.0
    assert resp.json()["status"] == "degraded" and resp.json()["epoch"] is None
    assert inst.get("/ready").status_code == 503
    assert "kiebot_leader_active 0.0" in inst.get("/metrics").text
    proxy.restore()
    wait_until(lambda: inst.get("/health").json()["active"], timeout=10, what="leadership re-won")
