"""The `kiebot` command line, run as a real process."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from tests.support.harness import ROOT


def kiebot(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KIEBOT_", "TELEGRAM_", "KIE_"))}
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def test_run_without_configuration_says_what_is_missing_one_line_each() -> None:
    result = kiebot("run", env={"HTTP_PORT": "http"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert any("TELEGRAM_BOT_TOKEN is required" in line for line in lines)
    assert any("KIE_API_KEY is required" in line for line in lines)
    assert any("HTTP_PORT must be a port number" in line for line in lines)
    assert "Traceback" not in result.stderr


def test_run_with_an_unreachable_database_fails_closed_with_a_clear_error() -> None:
    result = kiebot("run", env={"TELEGRAM_BOT_TOKEN": "1:x", "KIE_API_KEY": "k",
                                "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}, timeout=60)
    assert result.returncode == 3
    assert "database unavailable" in result.stderr and "Traceback" not in result.stderr


def test_migrate_applies_once_then_nothing(database_url: str) -> None:
    first = kiebot("migrate", env={"DATABASE_URL": database_url})
    assert first.returncode == 0 and "applied 0 migration(s)" in first.stdout  # the template is migrated


def test_models_json_lists_the_catalogue() -> None:
    result = kiebot("models", "--json")
    models = json.loads(result.stdout)
    assert {"id", "kind", "task", "price_credits"} <= set(models[0])
    assert any(m["id"] == "z-image" and m["price_credits"] == 0.8 for m in models)


def test_sim_prints_working_urls_and_stops_on_sigint() -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KIEBOT_", "TELEGRAM_", "KIE_"))}
    proc = subprocess.Popen([sys.executable, "-m", "cli", "sim"], cwd=ROOT, env=base, stdout=subprocess.PIPE, text=True)
    urls = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        if "=" in line:
            key, _, value = line.strip().partition("=")
            urls[key] = value
        if line.startswith("Simulators running"):
            break
    token = urls["TELEGRAM_BOT_TOKEN"]
    me = requests.get(f"{urls['TELEGRAM_API_URL']}/bot{token}/getMe", timeout=5).json()
    assert me["ok"] and me["result"]["is_bot"]
    credit = requests.get(f"{urls['KIE_API_URL']}/api/v1/chat/credit",
                          headers={"Authorization": f"Bearer {urls['KIE_API_KEY']}"}, timeout=5).json()
    assert credit["code"] == 200
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0
    proc.stdout.close()


def test_demo_delivers_every_job_exactly_once_through_a_leader_kill(tmp_path: Path) -> None:
    result = kiebot("demo", "--out", str(tmp_path / "out"), env={"KIEBOT_DATA_DIR": str(ROOT / ".kiebot")},
                    timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "RESULT: every job delivered exactly once" in result.stdout
    assert "took over in" in result.stdout
    images = sorted((tmp_path / "out").glob("*.png"))
    assert len(images) == 6 and all(p.read_bytes().startswith(b"\x89PNG") for p in images)
