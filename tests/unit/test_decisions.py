"""What a KIE record means, from real payload shapes (shared/reference/kie-api.md)."""
from __future__ import annotations

import json

import pytest

from actors.decisions import Failed, KeepWaiting, Succeeded, decide_after_record, next_poll_delay
from kie.records import parse_record, task_id_of

URL = "https://tempfile.aiquickdraw.com/a.png"


def record(state: str, **fields: object) -> dict[str, object]:
    return {"taskId": "e989621f54392584b05867f87b160672", "model": "z-image", "state": state,
            "param": json.dumps({"model": "z-image", "callBackUrl": "http://x/cb?token=t", "input": {}}),
            "resultJson": "", "failCode": "", "failMsg": "", **fields}


@pytest.mark.parametrize(("data", "expected"), [
    (record("success", resultJson=json.dumps({"resultUrls": [URL]})), Succeeded((URL,))),
    (record("SUCCESS", resultJson=json.dumps({"resultUrls": [URL]})), Succeeded((URL,))),
    (record("success", resultJson={"resultUrls": [URL]}), Succeeded((URL,))),
    (record("fail", failCode="500", failMsg="Internal error"), Failed("Internal error")),
    (record("fail", failCode="422"), Failed("error 422")),
    (record("waiting"), KeepWaiting("state 'waiting'")),
    (record("queuing"), KeepWaiting("state 'queuing'")),
    (record("Generating"), KeepWaiting("state 'Generating'")),
    (record("something-new"), KeepWaiting("state 'something-new'")),
    (record(""), KeepWaiting("state ''")),
    (record("success", resultJson=""), KeepWaiting("success without result URLs yet")),
    (record("success", resultJson="{not json"), KeepWaiting("success without result URLs yet")),
], ids=["success", "upper-case", "object-result", "fail", "fail-code-only", "waiting", "queuing",
        "odd-case", "unknown", "empty", "success-no-urls", "bad-json"])
def test_only_explicit_failure_is_terminal(data: dict[str, object], expected: object) -> None:
    assert decide_after_record(parse_record(data)) == expected


def test_record_is_null_means_keep_waiting() -> None:
    assert isinstance(decide_after_record(None), KeepWaiting)


def test_the_callback_url_is_read_from_param() -> None:
    assert parse_record(record("waiting")).callback_url == "http://x/cb?token=t"


@pytest.mark.parametrize("body", [
    {"code": 200, "data": {"taskId": "abc"}},
    {"taskId": "abc", "data": {"task_id": "abc"}},
    {"code": 200, "data": {"task_id": "abc"}},
])
def test_the_task_id_is_found_wherever_kie_put_it(body: dict[str, object]) -> None:
    assert task_id_of(body) == "abc"


def test_poll_delays_grow_and_are_capped() -> None:
    delays = [next_poll_delay(n, 1.0) for n in range(60)]
    assert delays == sorted(delays)
    assert delays[0] <= 2 and delays[-1] == 15
