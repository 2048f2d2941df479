"""The KIE client against answers it cannot read, through the real simulator over HTTP.

Whatever comes back (a proxy's HTML page, an empty or odd body, a body cut short, a reset
connection), the client raises only the action classes the JobActor handles. createTask says
"outcome unknown" only where KIE may have created the task, and "retry later" where it cannot
have; every other call says "retry later". No error text carries the API key.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from kie.client import KieClient
from kie.errors import KieAlert, KieError, KieJobFailed, KieNoCredit, KieRetryLater, KieSubmitOutcomeUnknown
from sim.kie import KieSim

KEY = "sim-kie-key-3f9a1c77e2"
Z_OK = {"prompt": "a red fox in snow", "aspect_ratio": "1:1"}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32

# (mode, HTTP status, body) for each fault, by name.
FAULTS = {
    "html-403": ("html", 403, ""),
    "html-429": ("html", 429, ""),
    "html-502": ("html", 502, ""),
    "html-503": ("html", 503, ""),
    "html-504": ("html", 504, ""),
    "html-500": ("html", 500, ""),
    "html-200": ("html", 200, ""),
    "empty-200": ("empty", 200, ""),
    "json-list": ("raw", 200, "[]"),
    "json-string": ("raw", 200, '"ok"'),
    "code-200-no-data": ("raw", 200, '{"code": 200}'),
    "truncated-json-text": ("raw", 200, '{"code":200,"msg":"success","data":{"taskId"'),
    "json-without-code-403": ("raw", 403, '{"error": "Forbidden"}'),
    "code-not-a-number": ("raw", 200, '{"code": "OK", "data": {"taskId": "abc"}}'),
    "code-infinity": ("raw", 200, '{"code": 1e400}'),
    "cut-off-transfer": ("truncated", 200, ""),
    "connection-reset": ("reset", 200, ""),
}
# createTask: where KIE may have the task, never resubmit; where it cannot, retry later.
CREATE_EXPECTED: dict[str, type[KieError]] = {
    "html-403": KieRetryLater,
    "html-429": KieRetryLater,
    "html-502": KieSubmitOutcomeUnknown,
    "html-503": KieRetryLater,
    "html-504": KieSubmitOutcomeUnknown,
    "html-500": KieSubmitOutcomeUnknown,
    "html-200": KieSubmitOutcomeUnknown,
    "empty-200": KieSubmitOutcomeUnknown,
    "json-list": KieSubmitOutcomeUnknown,
    "json-string": KieSubmitOutcomeUnknown,
    "code-200-no-data": KieSubmitOutcomeUnknown,
    "truncated-json-text": KieSubmitOutcomeUnknown,
    "json-without-code-403": KieRetryLater,
    "code-not-a-number": KieSubmitOutcomeUnknown,
    "code-infinity": KieSubmitOutcomeUnknown,
    "cut-off-transfer": KieSubmitOutcomeUnknown,
    "connection-reset": KieSubmitOutcomeUnknown,
}


@pytest.fixture(scope="module")
def sim() -> Iterator[KieSim]:
    with KieSim(api_key=KEY, default_duration_s=0.05, rate_limits=False) as started:
        yield started


@pytest.fixture
def client(sim: KieSim) -> KieClient:
    sim.reset()
    return KieClient(sim.url, KEY, upload_url=sim.upload_url, pacing=False)


def raised_by(call: Callable[[], object]) -> KieError:
    """The exception `call` raised, failing the test if it raised none or one outside the vocabulary."""
    try:
        result = call()
    except KieError as exc:
        assert KEY not in str(exc) and KEY not in repr(exc)
        return exc
    raise AssertionError(f"no error raised; got {result!r}")


@pytest.mark.parametrize("fault", list(CREATE_EXPECTED))
def test_create_task_answers_it_cannot_read_are_unknown_only_where_kie_may_have_the_task(
        sim: KieSim, client: KieClient, fault: str) -> None:
    mode, status, body = FAULTS[fault]
    sim.force_next("createTask", 1, status, mode=mode, body=body)
    exc = raised_by(lambda: client.create_task("z-image", Z_OK))
    assert type(exc) is CREATE_EXPECTED[fault]


@pytest.mark.parametrize("fault", list(FAULTS))
def test_record_info_answers_it_cannot_read_are_retry_later(sim: KieSim, client: KieClient, fault: str) -> None:
    task_id = client.create_task("z-image", Z_OK)
    mode, status, body = FAULTS[fault]
    sim.force_next("recordInfo", 1, status, mode=mode, body=body)
    assert type(raised_by(lambda: client.record_info(task_id))) is KieRetryLater
    assert client.record_info(task_id) is not None      # one bad answer, and the next poll reads the task


@pytest.mark.parametrize("fault", ["html-403", "html-502", "empty-200", "json-list", "code-200-no-data",
                                   "truncated-json-text", "json-without-code-403", "cut-off-transfer",
                                   "connection-reset"])
@pytest.mark.parametrize("endpoint", ["credit", "file-stream-upload"])
def test_credit_and_upload_answers_it_cannot_read_are_retry_later(
        sim: KieSim, client: KieClient, endpoint: str, fault: str) -> None:
    mode, status, body = FAULTS[fault]
    sim.force_next(endpoint, 1, status, mode=mode, body=body)
    call = client.credit if endpoint == "credit" else (lambda: client.upload_file(PNG, "in.png"))
    assert type(raised_by(call)) is KieRetryLater


def test_a_create_task_refused_by_a_proxy_creates_nothing_and_the_retry_creates_one_task(
        sim: KieSim, client: KieClient) -> None:
    sim.force_next("createTask", 4, 403, mode="html")
    for _ in range(4):
        assert type(raised_by(lambda: client.create_task("z-image", Z_OK))) is KieRetryLater
    task_id = client.create_task("z-image", Z_OK)
    assert list(sim.tasks()) == [task_id]


def test_four_html_403_polls_in_a_row_decide_nothing_and_the_fifth_reads_the_success(
        sim: KieSim, client: KieClient) -> None:
    task_id = client.create_task("z-image", Z_OK)
    sim.complete_now(task_id)
    sim.force_next("recordInfo", 4, 403, mode="html")
    for _ in range(4):
        assert type(raised_by(lambda: client.record_info(task_id))) is KieRetryLater
    record = client.record_info(task_id)
    assert record is not None and record.state == "success" and record.result_urls


@pytest.mark.parametrize(("code", "expected"), [
    (401, KieAlert), (402, KieNoCredit), (433, KieAlert), (422, KieJobFailed), (500, KieRetryLater),
    (455, KieRetryLater), (429, KieRetryLater),
])
@pytest.mark.parametrize("error_mode", ["http200", "http"])
def test_kie_envelopes_keep_their_meaning_whatever_the_http_status(
        sim: KieSim, client: KieClient, code: int, expected: type[KieError], error_mode: str) -> None:
    sim.error_mode = error_mode
    try:
        sim.force_next("createTask", 1, code)
        assert type(raised_by(lambda: client.create_task("z-image", Z_OK))) is expected
    finally:
        sim.error_mode = "http200"


def test_record_info_is_null_stays_not_visible_yet_in_either_error_mode(sim: KieSim, client: KieClient) -> None:
    sim.error_mode = "http"
    try:
        assert client.record_info("0" * 32) is None
    finally:
        sim.error_mode = "http200"


def test_an_unreachable_kie_is_retry_later_for_every_call() -> None:
    client = KieClient("http://127.0.0.1:9", KEY, upload_url="http://127.0.0.1:9", pacing=False)
    for call in (lambda: client.create_task("z-image", Z_OK), lambda: client.record_info("x"),
                 client.credit, lambda: client.upload_file(PNG, "in.png")):
        assert type(raised_by(call)) is KieRetryLater
