"""Settings: every problem is reported at once, one line each, secrets stay out of repr, and the
table of variables is the one in ../shared/design.md section 5."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from config.settings import VARIABLES, ConfigError, DeliveryPolicy, Settings

ROOT = Path(__file__).resolve().parents[2]

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


# --- the table of variables against the design contract ------------------------------------
DESIGN = ROOT.parent / "shared" / "design.md"   # CI checks the project out next to ../shared


@dataclass(frozen=True)
class DesignRow:
    names: tuple[str, ...]          # the variables the row defines, in order
    aliases: tuple[str, ...]        # "(or `PORT`)"
    defaults: tuple[str, ...] | None  # literal defaults, one per name; None: the cell is prose
    cell: str


def design_environment_rows(text: str) -> list[DesignRow]:
    """The rows of the Environment table in design.md section 5."""
    section = text.split("### Environment", 1)[1].split("\n### ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("variable", "---") or not cells[0].startswith("`"):
            continue
        variable, _, default = cells
        aliases = tuple(re.findall(r"\(or `([A-Z][A-Z0-9_]*)`\)", variable))
        names = tuple(n for n in re.findall(r"`([A-Z][A-Z0-9_]*)`", variable) if n not in aliases)
        literal = re.fullmatch(r"`[^`]+`(?:,\s*`[^`]+`)*", default)
        defaults = tuple(re.findall(r"`([^`]+)`", default)) if literal else None
        rows.append(DesignRow(names, aliases, defaults, default))
    return rows


@pytest.fixture(scope="module")
def design_rows() -> list[DesignRow]:
    assert DESIGN.is_file(), f"{DESIGN} is missing: CI checks out ../shared next to the project"
    rows = design_environment_rows(DESIGN.read_text())
    assert len(rows) >= 15, "the Environment table of design.md section 5 was not found"
    return rows


def test_every_design_variable_is_a_row_of_the_settings_table_and_nothing_else_is(
        design_rows: list[DesignRow]) -> None:
    designed = {name for row in design_rows for name in row.names}
    table = {v.name for v in VARIABLES if not v.internal}
    assert designed == table
    assert {a for row in design_rows for a in row.aliases} == {a for v in VARIABLES for a in v.aliases}
    assert all(v.name.startswith("KIEBOT_") for v in VARIABLES if v.internal)


def test_every_design_default_is_the_settings_tables_default(design_rows: list[DesignRow]) -> None:
    by_name = {v.name: v for v in VARIABLES}
    for row in design_rows:
        for index, name in enumerate(row.names):
            var = by_name[name]
            if row.defaults is None:    # prose: required, unset, or computed (host-pid)
                assert var.default is None, f"{name}: design says {row.cell!r}"
                assert bool(var.required) == row.cell.startswith("required for"), name
            else:
                assert var.default is not None, name
                assert var.parse(row.defaults[index]) == var.parse(var.default), name


def test_the_settings_fields_default_to_the_tables_defaults() -> None:
    built = Settings(telegram_bot_token="", kie_api_key="")
    for var in VARIABLES:
        if var.default is not None:
            assert getattr(built, var.field) == var.parse(var.default), var.name
        elif not var.required and var.name != "INSTANCE_ID":    # INSTANCE_ID is computed: host-pid
            assert not getattr(built, var.field), var.name      # unset: None, or no admins


def test_the_delivery_policy_is_an_enum() -> None:
    assert Settings.from_env(GOOD).delivery_policy is DeliveryPolicy.AT_LEAST_ONCE
    assert Settings.from_env({**GOOD, "DELIVERY_POLICY": "at_most_once"}).delivery_policy is DeliveryPolicy.AT_MOST_ONCE


def test_a_blank_variable_counts_as_unset_and_every_bad_one_is_named() -> None:
    assert Settings.from_env({**GOOD, "HTTP_PORT": "  ", "LOG_LEVEL": ""}).http_port == 8080
    bad = {"TELEGRAM_BOT_TOKEN": "no-colon", "KIE_CONFIRM_CALLBACKS": "maybe", "BOT_MODE": "push",
           "LOG_FORMAT": "xml", "LOG_LEVEL": "loud", "ADMIN_IDS": "1,x,3", "DATABASE_URL": "mysql://u:pw@h/d",
           "KIEBOT_LEADER_LOCK_KEY": str(2**63), "KIEBOT_POLL_BASE_S": "0", "KIEBOT_DELIVERY_GRACE_S": "-1",
           "KIEBOT_MAX_ACTIVE_JOBS": "0", "KIEBOT_LOCK_SILENCE_S": "1000", "KIEBOT_PRICING": "/nonexistent/prices"}
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"KIE_API_KEY": "k", **bad})
    named = {p.split()[0] for p in err.value.problems}
    assert named == set(bad)
    assert len(err.value.problems) == len(bad)
    assert not any("pw@" in p for p in err.value.problems)   # a database URL is never quoted
