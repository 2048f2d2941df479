"""A DATABASE_URL password never reaches the output of `kiebot run` or `kiebot migrate`: a
malformed URL or an unreachable server ends the command with one clean line."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.harness import ROOT
from tests.support.ports import refusing_port

PASSWORD = "pa%ss-hunter2"      # a stray %: libpq's own parse error would quote it


def kiebot(command: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIEBOT_", "TELEGRAM_", "KIE_", "DATABASE_"))}
    env.update({"TELEGRAM_BOT_TOKEN": "1:x", "KIE_API_KEY": "k", "DATABASE_URL": database_url})
    return subprocess.run([sys.executable, "-m", "cli", command], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def assert_one_clean_line(result: subprocess.CompletedProcess[str], *secrets: str) -> None:
    output = result.stdout + result.stderr
    assert [line for line in output.splitlines() if line.strip()] == [result.stderr.strip()]
    assert not [s for s in secrets if s in output]


@pytest.mark.parametrize("command", ["run", "migrate"])
def test_a_password_with_a_stray_percent_is_a_one_line_configuration_error_without_it(command: str) -> None:
    result = kiebot(command, f"postgresql://kiebot:{PASSWORD}@127.0.0.1:5432/kiebot")
    assert result.returncode == 2
    assert_one_clean_line(result, PASSWORD, "hunter2")
    assert "DATABASE_URL" in result.stderr


@pytest.mark.parametrize("command", ["run", "migrate"])
def test_an_unreachable_database_is_one_line_without_the_password(command: str) -> None:
    password = "s3cret-hunter2"
    with refusing_port() as port:
        result = kiebot(command, f"postgresql://kiebot:{password}@127.0.0.1:{port}/kiebot")
    assert result.returncode == 3
    assert_one_clean_line(result, password)
    assert "database unavailable" in result.stderr
