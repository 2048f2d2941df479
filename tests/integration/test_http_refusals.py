"""The HTTP edge refuses what it cannot store and decode with a 4xx and a plain reason, stores
nothing for it, and stores odd but real text (NUL, lone surrogates) instead of answering 500."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from actors.job_state import JobState
from http_gateway import HttpGateway
from sim.telegram import TelegramSim
from storage import inbox
from storage import updates as update_inbox
from storage.db import Database
from storage.jobs import Job
from tests.support.edge import WEBHOOK_SECRET, exchange, running_gateway, url
from tests.support.factories import make_job, take_epoch
from tests.support.harness import Instance
from tests.support.waiting import wait_until

USER = 7301
SECRET_HEADER = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}


@pytest.fixture
def gateway(db: Database) -> Iterator[HttpGateway]:
    with running_gateway(db) as gw:
        yield gw


@pytest.fixture
def job(database_url: str, db: Database) -> Job:
    return make_job(db, take_epoch(database_url), JobState.SUBMITTED, chat_id=USER)


def message(update_id: Any, text: str = "hello") -> dict[str, Any]:
    return {"update_id": update_id, "message": {
        "message_id": 1, "date": 0, "chat": {"id": USER, "type": "private"},
        "from": {"id": USER, "is_bot": False, "first_name": "T"}, "text": text}}


def post_update(gateway: HttpGateway, body: bytes, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(url(gateway, "/telegram/webhook"), data=body, timeout=5,
                         headers={**SECRET_HEADER, "Content-Type": "application/json", **(headers or {})})


def post_callback(gateway: HttpGateway, job: Job, body: bytes, content_type: str | None = "application/json",
                  token: str | None = None) -> requests.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    return requests.post(url(gateway, f"/kie/callback/{job.id}"), data=body, headers=headers, timeout=5,
                         params={"token": job.callback_token if token is None else token})


def metric(gateway: HttpGateway, line_start: str) -> str:
    text = requests.get(url(gateway, "/metrics"), timeout=5).text
    return next((line for line in text.splitlines() if line.startswith(line_start)), "")


# --------------------------------------------------------------------------- Telegram webhook
NOT_UPDATES = {
    "not json": b"{nope",
    "an array": b"[1, 2]",
    "a string": b'"update"',
    "an empty object": b"{}",
    "update_id true": json.dumps(message(True)).encode(),
    "update_id a float": b'{"update_id": 1e30}',
    "update_id a string": b'{"update_id": "5"}',
    "update_id negative": b'{"update_id": -1}',
    "update_id past bigint": json.dumps({"update_id": 2 ** 63}).encode(),
    "update_id NaN": b'{"update_id": NaN}',
    "a message without a date": json.dumps({"update_id": 5, "message": {"x": 1}}).encode(),
    "a message that is a string": b'{"update_id": 5, "message": "hi"}',
    "a number beyond float": b'{"update_id": 5, "x": 1e400}',
    "nesting past the parser": b'{"update_id": 5, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "nesting past the limit": b'{"update_id": 5, "x": ' + b"[" * 900 + b"]" * 900 + b"}",
}


@pytest.mark.parametrize("body", NOT_UPDATES.values(), ids=NOT_UPDATES.keys())
def test_a_webhook_body_that_is_not_a_decodable_update_gets_400_and_is_not_stored(
        gateway: HttpGateway, db: Database, body: bytes) -> None:
    resp = post_update(gateway, body)
    assert resp.status_code == 400
    reason = resp.json()["error"]
    assert reason and "Traceback" not in reason and len(reason) < 80
    assert update_inbox.unprocessed(db) == []
    assert metric(gateway, 'kiebot_telegram_updates_total{result="refused"}').endswith(" 1.0")


def test_update_id_true_is_refused_so_a_real_update_1_is_not_taken_for_a_duplicate(
        gateway: HttpGateway, db: Database) -> None:
    assert post_update(gateway, json.dumps(message(True, "shadow")).encode()).status_code == 400
    assert post_update(gateway, json.dumps(message(1, "the real one")).encode()).status_code == 200
    [(update_id, body)] = update_inbox.unprocessed(db)
    assert update_id == 1 and body["message"]["text"] == "the real one"


def test_the_secret_is_checked_before_the_body(gateway: HttpGateway, db: Database) -> None:
    for headers in ({"X-Telegram-Bot-Api-Secret-Token": "wrong"}, {"X-Telegram-Bot-Api-Secret-Token": ""}):
        assert post_update(gateway, b"{nope", headers).status_code == 403
    head = (b"POST /telegram/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"X-Telegram-Bot-Api-Secret-Token: wrong\r\nContent-Length: 5000000\r\n\r\n")
    assert exchange(gateway, head).startswith(b"HTTP/1.1 403 ")
    assert update_inbox.unprocessed(db) == []


def test_an_oversized_update_is_refused_413_from_its_headers_alone(gateway: HttpGateway, db: Database) -> None:
    head = (b"POST /telegram/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"X-Telegram-Bot-Api-Secret-Token: " + WEBHOOK_SECRET.encode() +
            b"\r\nContent-Length: 5000000\r\n\r\n")
    answer = exchange(gateway, head)      # the body is never sent: the answer must not wait for it
    assert answer.startswith(b"HTTP/1.1 413 ") and b"body too large" in answer
    assert update_inbox.unprocessed(db) == []


@pytest.mark.parametrize(("text", "stored"), [("nul\\u0000here", "nul\ufffdhere"),
                                          ("lone\\ud800", "lone\ufffd"),
                                          ("low\\udfffend", "low\ufffdend"),
                                          ("pair\\ud83d\\ude00ok", "pair\U0001F600ok")])
def test_an_update_with_nul_or_a_lone_surrogate_is_stored_with_a_replacement_character(
        gateway: HttpGateway, db: Database, text: str, stored: str) -> None:
    body = json.dumps(message(77, "PLACEHOLDER")).replace("PLACEHOLDER", text)
    body = body.replace('"date": 0', f'"date": 0, "odd\\u0000key": "{text}"')
    resp = post_update(gateway, body.encode())
    assert resp.status_code == 200
    [(update_id, saved)] = update_inbox.unprocessed(db)
    assert update_id == 77 and saved["message"]["text"] == stored
    assert saved["message"]["odd\ufffdkey"] == stored


# --------------------------------------------------------------------------- KIE callbacks
def valid_callback(job: Job) -> dict[str, Any]:
    return {"code": 200, "msg": "ok", "data": {"taskId": job.kie_task_id, "state": "success"}}


NOT_CALLBACKS: dict[str, tuple[bytes, str | None, int]] = {
    "no Content-Type": (b'{"data": {"taskId": "t"}}', None, 415),
    "text/plain": (b'{"data": {"taskId": "t"}}', "text/plain", 415),
    "form": (b"data=1", "application/x-www-form-urlencoded", 415),
    "not json": (b"{nope", "application/json", 400),
    "an array": (b"[]", "application/json", 400),
    "an empty object": (b"{}", "application/json", 400),
    "no data": (b'{"code": 200, "taskId": "t"}', "application/json", 400),
    "data not an object": (b'{"code": 200, "data": "t"}', "application/json", 400),
    "data null": (b'{"code": 200, "data": null}', "application/json", 400),
    "no task id": (b'{"code": 200, "data": {"state": "success"}}', "application/json", 400),
    "an empty task id": (b'{"data": {"taskId": ""}}', "application/json", 400),
    "a numeric task id": (b'{"data": {"taskId": 5}}', "application/json", 400),
    "Infinity": (b'{"data": {"taskId": "t", "costTime": Infinity}}', "application/json", 400),
    "a number beyond float": (b'{"data": {"taskId": "t", "costTime": 1e400}}', "application/json", 400),
    "nesting past the limit": (b'{"data": {"taskId": "t", "x": ' + b"[" * 900 + b"]" * 900 + b"}}",
                               "application/json", 400),
}


@pytest.mark.parametrize(("body", "content_type", "status"), NOT_CALLBACKS.values(), ids=NOT_CALLBACKS.keys())
def test_a_callback_with_the_right_token_but_no_callback_in_it_is_refused_and_not_stored(
        gateway: HttpGateway, db: Database, job: Job, body: bytes, content_type: str | None, status: int) -> None:
    resp = post_callback(gateway, job, body, content_type)
    assert resp.status_code == status
    reason = resp.json()["error"]
    assert reason and "Traceback" not in reason and job.callback_token not in resp.text
    assert inbox.pending_for_job(db, job.id) == []
    assert metric(gateway, 'kiebot_callbacks_total{outcome="invalid"}').endswith(" 1.0")


@pytest.mark.parametrize("shape", ["data.taskId", "data.task_id", "taskId", "charset"])
def test_a_callback_with_its_task_id_in_any_spelling_is_stored(
        gateway: HttpGateway, db: Database, job: Job, shape: str) -> None:
    task = job.kie_task_id
    body = {"data.taskId": {"data": {"taskId": task}}, "data.task_id": {"data": {"task_id": task}},
            "taskId": {"taskId": task, "data": {"callbackType": "complete"}},
            "charset": {"data": {"taskId": task}}}[shape]
    content_type = "application/json; charset=utf-8" if shape == "charset" else "application/json"
    assert post_callback(gateway, job, json.dumps(body).encode(), content_type).status_code == 200
    [stored] = inbox.pending_for_job(db, job.id)
    assert stored.body == body


def test_wrong_token_and_unknown_job_keep_their_answers_whatever_the_body(
        gateway: HttpGateway, db: Database, job: Job) -> None:
    assert post_callback(gateway, job, b"{}", "text/plain", token="wrong").status_code == 403
    assert post_callback(gateway, job, b"{}", "text/plain", token="").status_code == 403
    unknown = requests.post(url(gateway, "/kie/callback/999999"), params={"token": "x"}, data=b"{}", timeout=5)
    assert unknown.status_code == 404
    assert inbox.pending_for_job(db, job.id) == []


def test_an_oversized_callback_is_refused_413_from_its_headers_alone(
        gateway: HttpGateway, db: Database, job: Job) -> None:
    head = (f"POST /kie/callback/{job.id}?token={job.callback_token} HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/json\r\nContent-Length: {(1 << 20) + 1}\r\n\r\n").encode()
    answer = exchange(gateway, head)
    assert answer.startswith(b"HTTP/1.1 413 ") and job.callback_token.encode() not in answer
    assert inbox.pending_for_job(db, job.id) == []


def test_a_large_callback_under_the_cap_arrives_in_many_reads_and_is_stored(
        gateway: HttpGateway, db: Database, job: Job) -> None:
    body = {"data": {"taskId": job.kie_task_id, "padding": "x" * 900_000}}
    assert post_callback(gateway, job, json.dumps(body).encode()).status_code == 200
    [stored] = inbox.pending_for_job(db, job.id)
    assert len(stored.body["data"]["padding"]) == 900_000


@pytest.mark.parametrize(("escape", "stored"), [("\\u0000", "\ufffd"), ("\\ud800", "\ufffd"), ("\\udc00x", "\ufffdx")])
def test_a_callback_with_nul_or_a_lone_surrogate_is_stored_with_a_replacement_character(
        gateway: HttpGateway, db: Database, job: Job, escape: str, stored: str) -> None:
    body = json.dumps(valid_callback(job)).replace('"msg": "ok"', f'"msg": "a{escape}", "k{escape}": 1')
    assert post_callback(gateway, job, body.encode()).status_code == 200
    [saved] = inbox.pending_for_job(db, job.id)
    assert saved.body["msg"] == "a" + stored and saved.body["k" + stored] == 1


def test_raw_utf8_encoded_surrogates_are_stored_not_answered_500(gateway: HttpGateway, db: Database,
                                                                  job: Job) -> None:
    # json.loads decodes bytes with 'surrogatepass', so a CESU-style byte sequence reaches storage.
    body = json.dumps(valid_callback(job)).encode().replace(b'"ok"', b'"\xed\xa0\x80"')
    assert post_callback(gateway, job, body).status_code == 200
    [saved] = inbox.pending_for_job(db, job.id)
    assert saved.body["msg"] == "\ufffd"


# --------------------------------------------------------------------------- through a running bot
def test_a_malformed_webhook_update_is_refused_and_the_bot_keeps_answering(
        instance_factory: Callable[..., Instance], telegram: TelegramSim) -> None:
    inst = instance_factory(BOT_MODE="webhook", TELEGRAM_WEBHOOK_SECRET=WEBHOOK_SECRET)
    wait_until(lambda: inst.runtime.status.active and telegram.calls("setWebhook"), timeout=10,
               what="leader with its webhook registered")
    # update_id 0 sorts before every update the simulator sends, so a stored one would block them all.
    malformed = json.dumps({"update_id": 0, "message": {"text": "no date, no chat"}}).encode()
    resp = requests.post(f"{inst.url}/telegram/webhook", data=malformed, timeout=5,
                         headers={**SECRET_HEADER, "Content-Type": "application/json"})
    assert resp.status_code == 400 and resp.json()["error"] == "body is not a Telegram update"
    telegram.user_sends(USER, "/start")
    telegram.wait_for_chat(USER, lambda chat: any(m.from_bot for m in chat), timeout=10)
