"""What a KIE record means, from real payload shapes (shared/reference/kie-api.md)."""
from __future__ import annotations

import json

import pytest

from actors.decisions import Failed, KeepWaiting, Succeeded, decide_after_record, next_poll_delay
from kie.records import parse_record, task_id_of

URL = "https://tempfile.aiquickdraw.com/a.png"
URL2 = "https://file.aiquickdraw.com/b.mp4"


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
], ids=["success", "upper-case", "object-result", "fail", "fail-code-only", "waiting", "queuing",
        "odd-case", "unknown", "empty"])
def test_only_explicit_failure_or_a_finished_task_is_terminal(data: dict[str, object], expected: object) -> None:
    assert decide_after_record(parse_record(data)) == expected


TEXT = {"taskId": "e989621f54392584b05867f87b160672", "text": "Hello there"}


@pytest.mark.parametrize(("result_json", "expected"), [
    # media models: resultJson is a JSON string with resultUrls (reference/kie-api.md §2.2)
    (json.dumps({"resultUrls": [URL, URL2]}), Succeeded((URL, URL2))),
    # Seedance variants add frame URLs beside the results; they are not results
    (json.dumps({"resultUrls": [URL], "firstFrameUrl": URL2, "lastFrameUrl": URL2}), Succeeded((URL,))),
    # the snake_case spelling (§7.7)
    (json.dumps({"result_urls": [URL]}), Succeeded((URL,))),
    # a lone string where a list belongs is one URL, not a URL per character
    (json.dumps({"resultUrls": URL}), Succeeded((URL,))),
    # junk inside the list is left out
    (json.dumps({"resultUrls": [None, 7, {"url": URL}, "", URL]}), Succeeded((URL,))),
    # text models answer resultObject instead of URLs (§2.2): still a success
    (json.dumps({"resultObject": TEXT}), Succeeded((), json.dumps(TEXT, ensure_ascii=False))),
    (json.dumps({"resultObject": "just text"}), Succeeded((), "just text")),
    # resultJson as an object, not a string (C1, C7)
    ({"resultObject": "just text"}, Succeeded((), "just text")),
], ids=["urls", "seedance-frames", "snake-case", "lone-string", "junk-in-list", "text-object", "text-string",
        "object-not-string"])
def test_every_result_shape_kie_documents_is_a_success(result_json: object, expected: Succeeded) -> None:
    assert decide_after_record(parse_record(record("success", resultJson=result_json))) == expected


@pytest.mark.parametrize("result_json", [
    "", None, "{not json", "[]", json.dumps({}), json.dumps({"resultUrls": []}), json.dumps({"resultUrls": None}),
    json.dumps({"resultUrls": 7}), json.dumps({"resultUrls": ["", None]}), json.dumps({"resultUrls": ["ftp://x/a.png"]}),
    json.dumps({"resultObject": {}}), json.dumps({"resultObject": ""}), "[" * 100_000,
], ids=["empty", "null", "bad-json", "list", "no-keys", "no-urls", "null-urls", "number", "blank-urls",
        "not-http", "empty-object", "empty-text", "deeply-nested"])
def test_a_finished_task_without_urls_or_text_fails_at_once_with_a_plain_reason(result_json: object) -> None:
    assert decide_after_record(parse_record(record("success", resultJson=result_json))) == \
        Failed("the model finished without a result")


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
