"""/health, /ready and /metrics: fast and honest, the database down included; HEAD like GET;
stalled connections cost no thread and cannot starve /health."""
from __future__ import annotations

import gc
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator

import pytest
import requests

from config.settings import Settings
from http_gateway import HttpGateway, ListenError
from runtime import Runtime
from sim.kie import KieSim
from sim.telegram import TelegramSim
from storage.db import Database
from tests.support.edge import closed_by_server, connect, exchange, exchange_at, running_gateway, url
from tests.support.harness import Instance, sim_instance_env, start_instance
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
    assert 'kiebot_jobs{state="delivering"} 0.0' in text and 'state="delivered"' not in text.split("kiebot_jobs_finished_total")[0]
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
    down: Callable[[], bool] = lambda: (h := inst.get("/health").json())["db"] == "down" and not h["active"]
    wait_until(down, timeout=10, what="health reports the database down and no leadership")
    started = time.monotonic()
    resp = inst.get("/health")
    assert resp.status_code == 200 and time.monotonic() - started < 1.0
    assert resp.json()["status"] == "degraded" and resp.json()["epoch"] is None
    assert inst.get("/ready").status_code == 503
    assert "kiebot_leader_active 0.0" in inst.get("/metrics").text
    proxy.restore()
    wait_until(lambda: inst.get("/health").json()["active"], timeout=10, what="leadership re-won")


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics"])
def test_head_answers_like_get_without_a_body(bot: Instance, path: str) -> None:
    got = bot.get(path)
    answer = exchange_at(bot.port, f"HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {got.status_code} ".encode())
    assert f"Content-Type: {got.headers['Content-Type']}".encode() in head
    assert body == b""


STALLED = 200
WORKERS = 4


def stall(gateway: HttpGateway, n: int) -> list[socket.socket]:
    """n connections that never finish their request: half send nothing, half stop mid-body."""
    half_sent = (b"POST /telegram/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\n\r\n{\"update_id\":")
    return [connect(gateway, half_sent if i % 2 else b"") for i in range(n)]


def test_stalled_connections_take_no_thread_and_are_closed_after_the_read_timeout(db: Database) -> None:
    with running_gateway(db, read_timeout_s=1.0, max_workers=WORKERS) as gateway:
        assert requests.get(url(gateway, "/health"), timeout=1).status_code == 200
        threads_before = threading.active_count()
        sockets = stall(gateway, STALLED)
        try:
            # Healthy while every stalled connection is still open (they stay open for 1 s at least).
            assert requests.get(url(gateway, "/health"), timeout=1).status_code == 200
            assert threading.active_count() <= threads_before + WORKERS
            answers = {sock: bytearray() for sock in sockets}
            wait_until(lambda: all(closed_by_server(s, answers[s]) for s in sockets), timeout=10,
                       what="the gateway closes every stalled connection")
            assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers.values())
            assert threading.active_count() <= threads_before + WORKERS
            assert requests.get(url(gateway, "/health"), timeout=1).status_code == 200
        finally:
            for sock in sockets:
                sock.close()


def test_health_answers_while_many_stalled_connections_are_open(db: Database) -> None:
    with running_gateway(db, max_workers=WORKERS) as gateway:       # the default 10 s read timeout
        threads_before = threading.active_count()
        sockets = stall(gateway, STALLED)
        try:
            for _ in range(5):
                assert requests.get(url(gateway, "/health"), timeout=1).status_code == 200
            assert threading.active_count() <= threads_before + WORKERS
        finally:
            for sock in sockets:
                sock.close()


def test_a_connection_beyond_the_cap_is_answered_503_at_once(db: Database) -> None:
    with running_gateway(db, max_connections=5, read_timeout_s=60) as gateway:
        sockets = stall(gateway, 5)
        try:
            answer = exchange(gateway, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 503 ") and b"too many connections" in answer
            sockets.pop().close()        # a slot frees up once the gateway sees the close
            wait_until(lambda: exchange(gateway, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                       .startswith(b"HTTP/1.1 200 "), what="a freed slot serves /health")
        finally:
            for sock in sockets:
                sock.close()


def test_an_instance_whose_port_is_taken_fails_to_build_and_leaves_nothing_open(
        database_url: str, kie: KieSim, telegram: TelegramSim) -> None:
    threads_before = {t.ident for t in threading.enumerate()}
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        env = sim_instance_env(database_url, kie, telegram, port=port, instance_id="it-taken")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            with pytest.raises(ListenError, match=f"cannot listen on 127.0.0.1:{port}: Address already in use"):
                Runtime(Settings.from_env(env), database_url)
            gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert {t.ident for t in threading.enumerate()} - threads_before == set()
