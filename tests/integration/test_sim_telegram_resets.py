"""The Telegram simulator's connection resets and spared calls: a reset hangs up with a TCP RST,
before or after performing the call; a spared call passes untouched by the scripted faults so
that the next one gets them (the second album of a delivery, say)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from sim.telegram import TelegramSim

USER = 1002


@pytest.fixture
def sim() -> Iterator[TelegramSim]:
    with TelegramSim() as running:
        running.user_sends(USER, "hi")
        yield running


def send(sim: TelegramSim, text: str) -> requests.Response:
    return requests.post(f"{sim.url}/bot{sim.token}/sendMessage", json={"chat_id": USER, "text": text}, timeout=10)


def bot_texts(sim: TelegramSim) -> list[str]:
    return [m.text or "" for m in sim.chat(USER) if m.from_bot]


def test_a_reset_before_performing_sends_nothing_and_answers_nothing(sim: TelegramSim) -> None:
    sim.reset_next("sendMessage")
    with pytest.raises(requests.ConnectionError, match="reset by peer"):
        send(sim, "never arrives")
    assert bot_texts(sim) == []
    assert [c.status for c in sim.calls("sendMessage")] == [0]
    assert send(sim, "next one is fine").json()["ok"] is True


def test_a_reset_after_performing_sends_the_message_and_answers_nothing(sim: TelegramSim) -> None:
    sim.reset_next("sendMessage", performed=True)
    with pytest.raises(requests.ConnectionError, match="reset by peer"):
        send(sim, "arrives unanswered")
    assert bot_texts(sim) == ["arrives unanswered"]


def test_spared_calls_pass_and_the_fault_hits_the_next(sim: TelegramSim) -> None:
    sim.spare_next("sendMessage", 2)
    sim.fail_next("sendMessage", 1, status=500)
    assert [send(sim, t).status_code for t in ("one", "two", "three")] == [200, 200, 500]
    sim.spare_next("sendMessage")
    sim.drop_next_response("sendMessage")
    assert send(sim, "four").status_code == 200
    with pytest.raises(requests.ConnectionError):
        send(sim, "five")
    assert bot_texts(sim) == ["one", "two", "four", "five"]


def test_the_control_api_scripts_resets_and_spares(sim: TelegramSim) -> None:
    control = f"{sim.url}/__sim"
    assert requests.post(f"{control}/spare_next", json={"method": "sendMessage"}, timeout=5).ok
    assert requests.post(f"{control}/reset_next", json={"method": "sendMessage", "performed": True}, timeout=5).ok
    assert send(sim, "spared").ok
    with pytest.raises(requests.ConnectionError):
        send(sim, "reset after")
    assert bot_texts(sim) == ["spared", "reset after"]
