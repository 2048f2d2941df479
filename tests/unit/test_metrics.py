"""The metrics registry: known series start at 0, the result vocabulary is shared by KIE and
Telegram, and the build and process collectors are there."""
from __future__ import annotations

import platform
import re
from importlib import metadata

import pytest

from actors.ports import SendOutcome
from telemetry.metrics import KNOWN, Metrics
from telemetry.results import RequestResult, kie_result, telegram_result


def samples(m: Metrics) -> dict[str, float]:
    """`name{labels}` -> value for every sample of a scrape (label order as written)."""
    lines = m.render().decode().splitlines()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in lines if not line.startswith("#")}


def test_a_failure_series_exists_at_zero_before_the_first_failure() -> None:
    seen = samples(Metrics(models=["z-image", "flux-2/pro-text-to-image"]))
    for model in ("z-image", "flux-2/pro-text-to-image"):
        assert seen[f'kiebot_jobs_finished_total{{model="{model}",outcome="failure"}}'] == 0
        assert seen[f'kiebot_jobs_finished_total{{model="{model}",outcome="success"}}'] == 0
        assert seen[f'kiebot_jobs_created_total{{model="{model}"}}'] == 0


@pytest.mark.parametrize("family", sorted(set(KNOWN) - {"kiebot_jobs_finished"}))
def test_every_known_label_value_of_a_counter_is_exported_at_zero(family: str) -> None:
    seen = samples(Metrics(models=[]))
    suffix = "_total"
    exported = {key for key in seen if key.startswith(f"{family}{suffix}{{")}
    labels = KNOWN[family]
    expected = 1
    for values in labels.values():
        expected *= len(values)
    assert len(exported) == expected
    for name, values in labels.items():
        for value in values:
            assert any(f'{name}="{value}"' in key for key in exported), (family, name, value)
    assert all(seen[key] == 0 for key in exported)


def test_the_default_models_are_the_offered_catalogue() -> None:
    from config.catalogue import load_catalogue

    seen = samples(Metrics())
    offered = {m.id for m in load_catalogue() if m.offered}
    created = {re.search(r'model="([^"]+)"', key)[1] for key in seen  # type: ignore[index]
               if key.startswith("kiebot_jobs_created_total{")}
    assert created == offered


def test_the_delivery_error_outcomes_are_the_send_outcomes() -> None:
    assert set(KNOWN["kiebot_delivery_errors"]["outcome"]) == {o.value for o in SendOutcome}


def test_build_info_names_the_installed_version_and_python() -> None:
    seen = samples(Metrics(models=[]))
    key = (f'kiebot_build_info{{python="{platform.python_version()}",'
           f'version="{metadata.version("kiebot")}"}}')
    assert seen[key] == 1


def test_process_and_platform_collectors_are_registered() -> None:
    seen = samples(Metrics(models=[]))
    assert seen["process_resident_memory_bytes"] > 0
    assert seen["process_open_fds"] > 0
    assert any(key.startswith("python_info{") for key in seen)
    assert any(key.startswith("python_gc_collections_total{") for key in seen)


@pytest.mark.parametrize(("seen", "result"), [
    ("200", RequestResult.OK), ("201", RequestResult.OK), ("429", RequestResult.RETRY),
    ("500", RequestResult.RETRY), ("502", RequestResult.RETRY), ("401", RequestResult.REFUSED),
    ("402", RequestResult.REFUSED), ("422", RequestResult.REFUSED), ("302", RequestResult.ERROR),
    ("ReadTimeout", RequestResult.TIMEOUT), ("ConnectTimeout", RequestResult.TIMEOUT),
    ("ConnectionError", RequestResult.NETWORK), ("SSLError", RequestResult.NETWORK),
    ("TooManyRedirects", RequestResult.ERROR),
])
def test_kie_results_map_to_the_shared_vocabulary(seen: str, result: RequestResult) -> None:
    assert kie_result(seen) is result


@pytest.mark.parametrize(("seen", "result"), [
    ("ok", RequestResult.OK), ("RetryAfter", RequestResult.RETRY), ("TimedOut", RequestResult.TIMEOUT),
    ("NetworkError", RequestResult.NETWORK), ("BadRequest", RequestResult.REFUSED),
    ("Forbidden", RequestResult.REFUSED), ("deposed", RequestResult.NOT_SENT),
    ("RuntimeError", RequestResult.ERROR),
])
def test_telegram_results_map_to_the_shared_vocabulary(seen: str, result: RequestResult) -> None:
    assert telegram_result(seen) is result


def test_the_telegram_exception_names_mapped_are_real_ptb_exceptions() -> None:
    import telegram.error

    names = {"RetryAfter", "TimedOut", "NetworkError", "BadRequest", "Forbidden", "InvalidToken",
             "ChatMigrated", "Conflict", "EndPointNotFound"}
    assert all(isinstance(getattr(telegram.error, n, None), type) for n in names)
    assert all(telegram_result(n) is not RequestResult.ERROR for n in names)


def test_observed_requests_are_counted_in_the_vocabulary_not_the_dialect() -> None:
    m = Metrics(models=[])
    m.observe_kie_request("createTask", "200", 0.01)
    m.observe_kie_request("recordInfo", "ReadTimeout", 1.0)
    m.observe_telegram_request("sendPhoto", "RetryAfter", 0.02)
    seen = samples(m)
    assert seen['kiebot_kie_requests_total{method="createTask",result="ok"}'] == 1
    assert seen['kiebot_kie_requests_total{method="recordInfo",result="timeout"}'] == 1
    assert seen['kiebot_telegram_requests_total{method="sendPhoto",result="retry"}'] == 1
    assert not any('result="200"' in key or 'result="RetryAfter"' in key for key in seen)


def test_openmetrics_is_served_when_asked_for_and_text_otherwise() -> None:
    m = Metrics(models=[])
    body, content_type = m.exposition("application/openmetrics-text; version=1.0.0,text/plain;q=0.5")
    assert content_type.startswith("application/openmetrics-text") and body.endswith(b"# EOF\n")
    body, content_type = m.exposition(None)
    assert content_type.startswith("text/plain; version=0.0.4") and b"# EOF" not in body
