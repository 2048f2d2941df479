"""The simulators' control API after uploads and resets, and the options of `kiebot sim`.

Over real HTTP: the call logs stay JSON after a file was uploaded (uploads are described by name,
size and sha256), ids never repeat after /__sim/reset, and the KIE simulator started by the
`sim` command honours its error mode, failure rate and signing key.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from cli.simulators import SimOptions, add_kie_sim_arguments, export_lines, running_simulators
from sim.kie import KieSim
from sim.kie_media import png_bytes
from sim.telegram import TelegramSim
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
USER = 3101
KEY = "sim-kie-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
PNG = png_bytes("fox")


@pytest.fixture
def kie() -> Iterator[KieSim]:
    with KieSim(rate_limits=False, default_duration_s=0.05) as running:
        yield running


@pytest.fixture
def telegram() -> Iterator[TelegramSim]:
    with TelegramSim() as running:
        running.user_sends(USER, "hi")
        yield running


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def create_task(url: str, callback: str | None = None) -> requests.Response:
    body: dict[str, Any] = {"model": "z-image", "input": {"prompt": "a fox", "aspect_ratio": "1:1"}}
    if callback:
        body["callBackUrl"] = callback
    return requests.post(f"{url}/api/v1/jobs/createTask", json=body, headers=AUTH, timeout=10)


# ----- Telegram: the call log after uploads ---------------------------------------------------

def test_telegram_call_log_describes_an_uploaded_photo_by_name_size_and_digest(telegram: TelegramSim) -> None:
    sent = requests.post(f"{telegram.url}/bot{telegram.token}/sendPhoto", data={"chat_id": USER},
                         files={"photo": ("fox.png", PNG, "image/png")}, timeout=10)
    assert sent.json()["ok"] is True
    reply = requests.get(f"{telegram.url}/__sim/calls", params={"method": "sendPhoto"}, timeout=10)
    assert reply.status_code == 200
    [call] = reply.json()["calls"]
    assert call["params"]["photo"] == {"upload": "fox.png", "size": len(PNG), "content_type": "image/png",
                                       "sha256": sha256(PNG)}


def test_telegram_call_log_stays_json_after_a_refused_upload_and_an_album(telegram: TelegramSim) -> None:
    api = f"{telegram.url}/bot{telegram.token}"
    requests.post(f"{api}/sendDocument", data={"chat_id": 999_999}, timeout=10,
                  files={"document": ("raw.bin", b"\xff\x00\xfe", "application/octet-stream")})
    album = ('[{"type": "photo", "media": "attach://a"}, {"type": "photo", "media": "attach://b"}]')
    requests.post(f"{api}/sendMediaGroup", data={"chat_id": USER, "media": album}, timeout=10,
                  files={"a": ("a.png", PNG, "image/png"), "b": ("b.png", PNG, "image/png")})
    for path, params in (("calls", {}), ("wait_for_call", None), (f"chats/{USER}", {})):
        if params is None:
            reply = requests.post(f"{telegram.url}/__sim/{path}", json={"method": "sendMediaGroup"}, timeout=10)
        else:
            reply = requests.get(f"{telegram.url}/__sim/{path}", params=params, timeout=10)
        assert reply.status_code == 200, (path, reply.text[:300])
    calls = requests.get(f"{telegram.url}/__sim/calls", timeout=10).json()["calls"]
    [document] = [c for c in calls if c["method"] == "sendDocument"]
    assert document["params"]["document"]["sha256"] == sha256(b"\xff\x00\xfe")


# ----- KIE: the call log after uploads, ids after a reset -------------------------------------

def test_kie_call_log_describes_a_streamed_upload_by_name_size_and_digest(kie: KieSim) -> None:
    uploaded = requests.post(f"{kie.upload_url}/api/file-stream-upload", headers=AUTH, timeout=10,
                             files={"file": ("fox.png", PNG, "image/png")}, data={"uploadPath": "in"})
    assert uploaded.json()["code"] == 200
    reply = requests.get(f"{kie.url}/__sim/calls", params={"endpoint": "file-stream-upload"}, timeout=10)
    assert reply.status_code == 200
    [call] = reply.json()["result"]
    assert call["body"]["file"] == {"filename": "fox.png", "size": len(PNG), "sha256": sha256(PNG)}


def test_kie_task_ids_never_repeat_after_a_reset(kie: KieSim) -> None:
    before = [create_task(kie.url).json()["data"]["taskId"] for _ in range(3)]
    assert requests.post(f"{kie.url}/__sim/reset", json={}, timeout=10).json()["ok"] is True
    after = [create_task(kie.url).json()["data"]["taskId"] for _ in range(3)]
    assert len(set(before + after)) == 6, (before, after)


def test_kie_upload_file_ids_never_repeat_after_a_reset(kie: KieSim) -> None:
    def upload() -> str:
        body = {"base64Data": base64.b64encode(PNG).decode(), "uploadPath": "in"}
        reply = requests.post(f"{kie.upload_url}/api/file-base64-upload", json=body, headers=AUTH, timeout=10)
        return str(reply.json()["data"]["fileId"])
    before = upload()
    requests.post(f"{kie.url}/__sim/reset", json={}, timeout=10)
    assert upload() != before


# ----- `kiebot sim`: the KIE simulator's options ----------------------------------------------

def parse(*argv: str) -> SimOptions:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kie-port", type=int, default=0)
    parser.add_argument("--telegram-port", type=int, default=0)
    add_kie_sim_arguments(parser)
    return SimOptions.from_args(parser.parse_args(list(argv)))


def test_sim_options_set_the_error_mode_and_the_failure_rate() -> None:
    options = parse("--kie-error-mode", "http", "--kie-fail-rate", "1")
    with running_simulators(options) as (kie, _):
        reply = create_task(kie.url)
        assert (reply.status_code, reply.json()["code"]) == (500, 500)


def test_sim_options_sign_callbacks_with_the_given_key_and_print_it_for_the_bot() -> None:
    options = parse("--kie-hmac-key", "whsec-cli", "--kie-duration", "0", "--seed", "5")
    with running_simulators(options) as (kie, telegram):
        assert "KIE_WEBHOOK_HMAC_KEY=whsec-cli" in export_lines(kie, telegram, options)
        # Any loopback URL will do: the simulator records each attempt's headers before the answer.
        task_id = create_task(kie.url, callback=f"{telegram.url}/callback-sink").json()["data"]["taskId"]
        attempts = wait_until(lambda: requests.get(f"{kie.url}/__sim/callbacks", timeout=10).json()["result"],
                              what="a callback attempt")
    headers = attempts[0]["headers"]
    mac = hmac.new(b"whsec-cli", f"{task_id}.{headers['X-Webhook-Timestamp']}".encode(), hashlib.sha256)
    assert headers["X-Webhook-Signature"] == base64.b64encode(mac.digest()).decode()


def test_sim_options_refuse_a_failure_rate_outside_zero_to_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("--kie-fail-rate", "1.5")
    assert "must be between 0 and 1" in capsys.readouterr().err


def test_sim_starts_with_a_new_seed_each_time_so_task_ids_differ_across_runs() -> None:
    def first_id() -> str:
        with running_simulators(parse()) as (kie, _):
            return str(create_task(kie.url).json()["data"]["taskId"])
    assert first_id() != first_id()


def test_the_sim_command_starts_a_kie_simulator_with_the_given_modes_and_prints_its_key() -> None:
    command = [sys.executable, "-m", "cli", "sim", "--kie-error-mode", "http", "--kie-fail-rate", "1",
               "--kie-hmac-key", "whsec-cli"]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as proc:
        lines: queue.Queue[str] = queue.Queue()

        def read() -> None:
            for line in proc.stdout or ():
                lines.put(line)
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            printed: dict[str, str] = {}
            while not (line := lines.get(timeout=30)).startswith("Simulators running"):
                name, _, value = line.strip().partition("=")
                printed[name] = value
            assert printed["KIE_WEBHOOK_HMAC_KEY"] == "whsec-cli"
            reply = create_task(printed["KIE_API_URL"])
            assert (reply.status_code, reply.json()["code"]) == (500, 500)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
            reader.join(timeout=30)
