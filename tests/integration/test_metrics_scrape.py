"""/metrics of a running instance: promtool accepts it, alert-read series exist at 0 before
anything happens, OpenMetrics is served when asked for, and KIE and Telegram requests are
counted in one result vocabulary."""
from __future__ import annotations

import shutil
import subprocess

import requests
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from sim.kie import KieSim
from sim.telegram import TelegramSim
from tests.support.edge import exchange_at
from tests.support.harness import Instance
from tests.support.waiting import wait_until

OPENMETRICS = "application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: `make test` installs Debian's prometheus package"
    return found


def test_promtool_accepts_a_live_scrape(bot: Instance) -> None:
    body = requests.get(f"{bot.url}/metrics", timeout=5).content
    checked = subprocess.run([promtool(), "check", "metrics"], check=False, input=body, capture_output=True, timeout=60)
    # promtool exits 1 for lint findings and 3 for unparseable input; both fail here.
    assert checked.returncode == 0, (checked.stdout.decode()[-2000:], checked.stderr.decode()[-2000:])


def test_the_openmetrics_scrape_parses_strictly(bot: Instance) -> None:
    """promtool 2.42 reads only the text format; prometheus_client's OpenMetrics parser is strict."""
    body = requests.get(f"{bot.url}/metrics", headers={"Accept": OPENMETRICS}, timeout=5).text
    families = {f.name: f for f in text_string_to_metric_families(body)}  # type: ignore[no-untyped-call]
    assert families["kiebot_jobs_finished"].type == "counter"
    assert families["kiebot_build_info"].type == "gauge"


def test_failure_and_error_series_exist_at_zero_before_anything_happened(bot: Instance) -> None:
    text = bot.get("/metrics").text
    for series in ('kiebot_jobs_finished_total{model="z-image",outcome="failure"} 0.0',
                   'kiebot_deliveries_total{outcome="failure"} 0.0',
                   'kiebot_delivery_errors_total{outcome="unknown"} 0.0',
                   'kiebot_callbacks_total{outcome="forged"} 0.0',
                   'kiebot_duplicates_suppressed_total{kind="callback"} 0.0',
                   'kiebot_telegram_wait_seconds_total{reason="429"} 0.0',
                   'kiebot_leadership_changes_total{to="passive"} 0.0'):
        assert series in text, series
    assert "kiebot_build_info{" in text and "process_resident_memory_bytes" in text


def test_metrics_are_openmetrics_when_the_scraper_asks_and_head_agrees(bot: Instance) -> None:
    got = requests.get(f"{bot.url}/metrics", headers={"Accept": OPENMETRICS}, timeout=5)
    assert got.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert got.text.endswith("# EOF\n")
    plain = bot.get("/metrics")
    assert plain.headers["Content-Type"].startswith("text/plain; version=0.0.4") and "# EOF" not in plain.text
    answer = exchange_at(bot.port, f"HEAD /metrics HTTP/1.1\r\nHost: x\r\nAccept: {OPENMETRICS}\r\n\r\n".encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"Content-Type: application/openmetrics-text" in head
    assert body == b""


def test_a_delivered_job_counts_its_requests_in_the_shared_vocabulary(
        bot: Instance, kie: KieSim, telegram: TelegramSim) -> None:
    telegram.user_sends(7, "/imagine counted")
    telegram.wait_for_chat(7, lambda c: any(m.media == "photo" for m in c), timeout=10)
    wait_until(lambda: 'kiebot_deliveries_total{outcome="success"} 1.0' in bot.get("/metrics").text)
    text = bot.get("/metrics").text
    assert 'kiebot_kie_requests_total{method="createTask",result="ok"} 1.0' in text
    assert 'kiebot_telegram_requests_total{method="sendPhoto",result="ok"} 1.0' in text
    assert 'result="200"' not in text
