"""The operator kit in deploy/ matches what kiebot really is.

- Every metric an alert rule (deploy/prometheus/alerts.yml) or a dashboard panel
  (deploy/grafana/kiebot.json) queries is one kiebot exposes. The exposed names come from the
  real code: a `telemetry.metrics.Metrics` with database gauges attached, rendered to the
  Prometheus text format and read from its `# TYPE` lines.
- The dashboard is well-formed; the Render blueprint carries every variable `kiebot run` needs in
  webhook mode (and its literal values pass `Settings`); the Dockerfile runs `kiebot run`.

PyYAML is not a dependency of kiebot, so alerts.yml (conventional YAML) is read here by a small
line-based reader, `read_alert_rules`, that understands only the subset the file uses: `- alert:`
starts a rule; `key: value` lines (plain or quoted scalars) and `key: |` / `key: >-` block
scalars (the body is every following, more-indented line) set the rule's fields; the nested
`labels:` and `annotations:` maps are flattened into the rule. Anything else makes it fail loudly.
"""
from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from config.settings import Settings
from telemetry.metrics import DatabaseGauges, Metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "kiebot.json"
RENDER = DEPLOY / "render.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"

WEBHOOK_MODE_REQUIRED = ("TELEGRAM_BOT_TOKEN", "KIE_API_KEY", "DATABASE_URL", "PUBLIC_URL", "BOT_MODE",
                         "TELEGRAM_WEBHOOK_SECRET")
SEVERITIES = {"page", "warning"}

_KEY_LINE = re.compile(r"^(?P<indent>\s*)(?:- )?(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?:\s+(?P<value>.*?))?\s*$")
_BLOCK = {"|", "|-", "|+", ">", ">-", ">+"}
_METRIC = re.compile(r"\bkiebot_[A-Za-z0-9_]+")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def read_alert_rules(text: str) -> list[dict[str, str]]:
    """The rules of a Prometheus rules file, each a flat dict (see the module docstring)."""
    lines = text.splitlines()
    rules: list[dict[str, str]] = []
    rule: dict[str, str] | None = None
    i = 0
    while i < len(lines):
        line, number = lines[i], i + 1
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _KEY_LINE.match(line)
        if m is None:
            raise ValueError(f"alerts.yml line {number} is outside the subset this reader knows: {line!r}")
        key, value = m["key"], m["value"] or ""
        if value in _BLOCK:
            body: list[str] = []
            while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > len(m["indent"])):
                body.append(lines[i].rstrip())
                i += 1
            if value.startswith("|"):  # literal: keep the lines, minus the block's indentation
                value = textwrap.dedent("\n".join(body)).strip("\n")
            else:  # folded: one line
                value = " ".join(part.strip() for part in body if part.strip())
        elif len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if key == "alert":
            rule = {"alert": value}
            rules.append(rule)
        elif key in ("groups", "name", "rules"):
            rule = None  # group level: belongs to no rule
        elif rule is not None:
            rule[key] = value
    return rules


def exposed_metric_names() -> set[str]:
    """Every series name a kiebot instance's /metrics can carry.

    prometheus_client writes a counter's TYPE line with or without `_total` depending on its
    version and format; the series is always `<name>_total`. A histogram `x` exposes `x_bucket`,
    `x_sum` and `x_count`. The `<name>_created` gauges prometheus_client adds next to counters
    and histograms are left out: dashboards and alerts have no business with them.
    """
    m = Metrics()
    m.watch_database(lambda: DatabaseGauges({"created": 1}, 0, 0, 0.0))
    types = re.findall(r"^# TYPE (\S+) (\S+)$", m.render().decode(), flags=re.MULTILINE)
    families = {name.removesuffix("_total") for name, kind in types if kind in ("counter", "histogram")}
    names: set[str] = set()
    for name, kind in types:
        if kind == "counter":
            names.add(name.removesuffix("_total") + "_total")
        elif kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        elif not (name.endswith("_created") and name.removesuffix("_created") in families):
            names.add(name)
    return names


def metric_names_in(expr: str) -> set[str]:
    """The kiebot metric names a PromQL expression uses (string literals such as label values
    are blanked first, so `{job="kiebot_x"}` would not count)."""
    return set(_METRIC.findall(re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)))


@pytest.fixture(scope="module")
def exposed() -> set[str]:
    return exposed_metric_names()


@pytest.fixture(scope="module")
def rules() -> list[dict[str, str]]:
    return read_alert_rules(ALERTS.read_text())


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def test_the_exposed_metric_names_are_read_from_the_real_registry(exposed: set[str]) -> None:
    assert {"kiebot_jobs", "kiebot_inbox_backlog", "kiebot_oldest_unfinished_job_age_seconds",
            "kiebot_jobs_created_total", "kiebot_leader_active", "kiebot_job_duration_seconds_bucket",
            "kiebot_telegram_wait_seconds_total"} <= exposed
    assert "kiebot_job_duration_seconds" not in exposed  # a histogram has no bare series
    assert not any(name.endswith("_created") for name in exposed)


def test_the_rule_reader_reads_every_rule_in_the_file(rules: list[dict[str, str]]) -> None:
    assert len(rules) == len(re.findall(r"^\s*- alert:", ALERTS.read_text(), flags=re.MULTILINE))
    assert len(rules) >= 11
    assert {"KiebotNoLeader", "KiebotTwoLeaders", "KiebotKieFailureRate"} <= {r["alert"] for r in rules}
    failure_rate = next(r for r in rules if r["alert"] == "KiebotKieFailureRate")
    assert 'kiebot_jobs_finished_total{outcome="failure"}' in failure_rate["expr"]


def test_every_alert_queries_only_metrics_kiebot_exposes(rules: list[dict[str, str]], exposed: set[str]) -> None:
    unknown = {r["alert"]: sorted(metric_names_in(r["expr"]) - exposed) for r in rules}
    assert {alert: names for alert, names in unknown.items() if names} == {}


def test_every_alert_has_an_expression_a_severity_and_advice(rules: list[dict[str, str]]) -> None:
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names)), "alert names must be unique"
    for r in rules:
        assert r.get("expr"), r["alert"]
        assert metric_names_in(r["expr"]) or re.search(r"\bup\{", r["expr"]), r["alert"]
        assert r.get("severity") in SEVERITIES, r["alert"]
        assert r.get("summary") and len(r.get("description", "")) > 40, r["alert"]


def test_only_impossible_or_user_visible_outages_page(rules: list[dict[str, str]]) -> None:
    paging = {r["alert"] for r in rules if r["severity"] == "page"}
    assert {"KiebotNoLeader", "KiebotTwoLeaders"} <= paging
    assert "KiebotInstanceDown" not in paging  # the other instance keeps serving


def test_the_dashboard_is_json_with_unique_panel_ids_and_a_target_on_every_panel(dashboard: dict) -> None:
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for p in panels:
        assert p.get("targets") and all(t.get("expr") for t in p["targets"]), p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
    assert 36 <= dashboard["schemaVersion"] <= 41


def test_every_dashboard_query_uses_only_metrics_kiebot_exposes(dashboard: dict, exposed: set[str]) -> None:
    unknown: dict[str, list[str]] = {}
    for p in dashboard["panels"]:
        for t in p["targets"]:
            if missing := sorted(metric_names_in(t["expr"]) - exposed):
                unknown[f"{p['title']} / {t['refId']}"] = missing
    for var in dashboard["templating"]["list"]:
        query = var.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        if missing := sorted(metric_names_in(text) - exposed):
            unknown[f"variable {var['name']}"] = missing
    assert unknown == {}


def test_every_dashboard_panel_reads_the_prometheus_datasource_variable(dashboard: dict) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    for p in dashboard["panels"]:
        assert p["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
        assert all(t["datasource"]["uid"] == "${DS_PROMETHEUS}" for t in p["targets"]), p["title"]


def _render_env_vars(text: str) -> dict[str, str | None]:
    """`- key: NAME` entries of render.yaml, with their literal `value:` when they have one."""
    env: dict[str, str | None] = {}
    current: str | None = None
    for line in text.splitlines():
        if m := re.match(r"^\s*- key:\s*(\S+)\s*$", line):
            current = m[1]
            env[current] = None
        elif current and (m := re.match(r"^\s*value:\s*(.+?)\s*$", line)):
            env[current] = m[1].strip("\"'")
            current = None
    return env


def test_the_render_blueprint_sets_every_variable_webhook_mode_needs() -> None:
    text = RENDER.read_text()
    env = _render_env_vars(text)
    assert set(WEBHOOK_MODE_REQUIRED) <= set(env)
    assert env["BOT_MODE"] == "webhook"
    assert re.search(r"^\s*numInstances:\s*2\s*$", text, flags=re.MULTILINE)
    assert re.search(r"^\s*healthCheckPath:\s*/ready\s*$", text, flags=re.MULTILINE)
    assert re.search(r"^\s*property:\s*connectionString\s*$", text, flags=re.MULTILINE)
    assert re.search(r"^databases:\s*$", text, flags=re.MULTILINE)
    # The secrets are prompted for, never committed.
    for secret in ("TELEGRAM_BOT_TOKEN", "KIE_API_KEY", "TELEGRAM_WEBHOOK_SECRET", "KIE_WEBHOOK_HMAC_KEY"):
        assert secret in env and env[secret] is None, secret


def test_the_render_blueprint_values_are_accepted_by_the_settings() -> None:
    env = _render_env_vars(RENDER.read_text())
    stand_ins = {"TELEGRAM_BOT_TOKEN": "123456:abcdefghijklmnopqrstuvwxyz", "KIE_API_KEY": "k" * 32,
                 "TELEGRAM_WEBHOOK_SECRET": "s" * 32, "KIE_WEBHOOK_HMAC_KEY": "h" * 32,
                 "PUBLIC_URL": "https://kiebot.example.com",
                 "DATABASE_URL": "postgresql://kiebot:pw@dpg-example-a/kiebot"}
    settings = Settings.from_env({name: value if value is not None else stand_ins[name]
                                  for name, value in env.items()})
    assert (settings.bot_mode, settings.public_url, settings.log_format) == (
        "webhook", "https://kiebot.example.com", "json")


def dockerfile_instructions(text: str) -> list[str]:
    """The Dockerfile's instructions, continuation lines (`\\` at the end) joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", "\n".join(line for line in text.splitlines()
                                          if not line.lstrip().startswith("#")))
    return [line.strip() for line in joined.splitlines() if line.strip()]


def test_the_docker_image_runs_kiebot_run_as_a_non_root_user() -> None:
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    assert instructions[0].startswith("FROM python:3.11-slim")
    cmd = [line for line in instructions if line.startswith("CMD ")]
    assert len(cmd) == 1 and json.loads(cmd[0][4:]) == ["kiebot", "run"]
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert "EXPOSE 8080" in instructions
    healthcheck = [line for line in instructions if line.startswith("HEALTHCHECK ")]
    assert len(healthcheck) == 1 and " CMD " in healthcheck[0] and "urllib" in healthcheck[0]
    assert "http://127.0.0.1:" in healthcheck[0] and "/health" in healthcheck[0]
    assert any(re.match(r"RUN pip install \.( |$)", line) for line in instructions)


def test_the_docker_build_context_leaves_local_state_out() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".venv", ".kiebot", ".git", "demo-output", ".pytest_cache", "bench/out"} <= ignored
    assert ignored & {"__pycache__", "**/__pycache__"}
