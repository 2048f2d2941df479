"""Settings: every problem is reported at once, one line each, and secrets stay out of repr."""
from __future__ import annotations

import pytest

from config.settings import ConfigError, Settings

GOOD = {"TELEGRAM_BOT_TOKEN": "123456:abcdefghijklmnopqrstuvwxyz", "KIE_API_KEY": "k" * 32}


def test_defaults_follow_the_design_contract() -> None:
    s = Settings.from_env(GOOD)
    assert (s.telegram_api_url, s.kie_api_url, s.kie_upload_url) == (
        "https://api.telegram.org", "https://api.kie.ai", "https://kieai.redpandaai.co")
    assert (s.delivery_policy, s.bot_mode, s.http_port, s.kie_confirm_callbacks) == ("at_least_once", "polling", 8080, True)


def test_each_problem_gets_its_own_line() -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"KIE_API_URL": "ftp://x", "HTTP_PORT": "99999", "DELIVERY_POLICY": "sometimes"})
    problems = err.value.problems
    assert any("TELEGRAM_BOT_TOKEN is required" in p for p in problems)
    assert any("KIE_API_KEY is required" in p for p in problems)
    assert any(p.startswith("KIE_API_URL") for p in problems)
    assert any(p.startswith("HTTP_PORT") for p in problems)
    assert any(p.startswith("DELIVERY_POLICY") for p in problems)


def test_port_falls_back_to_the_platform_port_variable() -> None:
    assert Settings.from_env({**GOOD, "PORT": "9000"}).http_port == 9000


def test_webhook_mode_needs_a_secret_and_a_public_url() -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**GOOD, "BOT_MODE": "webhook"})
    assert len(err.value.problems) == 2


def test_secrets_never_appear_in_repr() -> None:
    s = Settings.from_env({**GOOD, "TELEGRAM_WEBHOOK_SECRET": "wh-secret-123", "KIE_WEBHOOK_HMAC_KEY": "hmac-key-456"})
    shown = repr(s)
    for secret in (GOOD["TELEGRAM_BOT_TOKEN"], GOOD["KIE_API_KEY"], "wh-secret-123", "hmac-key-456"):
        assert secret not in shown


def test_client_pacing_is_on_unless_explicitly_turned_off() -> None:
    assert Settings.from_env(GOOD).client_pacing is True
    assert Settings.from_env({**GOOD, "KIEBOT_CLIENT_PACING": "on"}).client_pacing is True
    assert Settings.from_env({**GOOD, "KIEBOT_CLIENT_PACING": "OFF"}).client_pacing is False
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**GOOD, "KIEBOT_CLIENT_PACING": "fast"})
    assert [p for p in err.value.problems if p.startswith("KIEBOT_CLIENT_PACING")]


def test_kie_client_without_pacing_never_waits_for_a_window() -> None:
    from kie.client import KieClient

    paced, unpaced = KieClient("http://127.0.0.1:9", "k"), KieClient("http://127.0.0.1:9", "k", pacing=False)
    assert paced._create_window is not None and paced._record_window is not None
    assert unpaced._create_window is None and unpaced._record_window is None


def test_job_slots_default_to_sixteen_and_refuse_nonsense() -> None:
    assert Settings.from_env(GOOD).job_slots == 16
    assert Settings.from_env({**GOOD, "KIEBOT_JOB_SLOTS": "4"}).job_slots == 4
    for bad in ("0", "-3", "many", "5000"):
        with pytest.raises(ConfigError) as err:
            Settings.from_env({**GOOD, "KIEBOT_JOB_SLOTS": bad})
        assert [p for p in err.value.problems if p.startswith("KIEBOT_JOB_SLOTS")]
