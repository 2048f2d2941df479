"""The KIE simulator over real HTTP: the API contract, task fates, callback faults, uploads, expiry.

Every test talks to a started `KieSim` with `requests`, and callbacks land on a tiny receiver
started here on 127.0.0.1:0. Waits are on conditions; the only time spent is the simulated
durations (0.3 s at most).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from config.catalogue import load_catalogue
from sim.kie import Fate, KieSim
from sim.kie_media import mp3_bytes, mp4_bytes, png_bytes
from tests.support.ports import refusing_port
from tests.support.waiting import wait_until

KEY = "sim-kie-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
Z_OK = {"prompt": "a red fox in snow", "aspect_ratio": "1:1"}
FAST_BACKOFF = (0.02, 0.04, 0.06)


# ----- helpers --------------------------------------------------------------------------------

class Receiver:
    """A callback receiver: records every POST (before answering) and answers by path.

    /cb -> 200; /fail -> 500; /flaky/N -> 500 for the first N posts then 200; /hang -> waits
    until released (the sim times out first); /gather -> holds each post until two are in
    flight at once, to prove copies are concurrent.
    """

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.order: list[str] = []
        self.cond = threading.Condition()
        self.release = threading.Event()
        self.hook: Callable[[dict[str, Any]], None] | None = None
        self.counts: dict[str, int] = {}
        self.inflight = 0
        self.max_inflight = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = receiver.handle(self.path, dict(self.headers), body)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"code":200,"msg":"success"}')
                except OSError:
                    pass  # the sim gave up waiting (timeout test)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()

    def url(self, path: str = "/cb") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def handle(self, path: str, headers: dict[str, str], raw: bytes) -> int:
        entry = {"path": path, "headers": headers, "body": json.loads(raw), "at": time.time(),
                 "mono": time.monotonic()}
        with self.cond:
            self.counts[path] = self.counts.get(path, 0) + 1
            seen = self.counts[path]
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
            self.received.append(entry)
            self.order.append("callback")
            self.cond.notify_all()
        try:
            if self.hook:
                self.hook(entry)
            if path == "/fail":
                return 500
            if path.startswith("/flaky/"):
                return 500 if seen <= int(path.rsplit("/", 1)[1]) else 200
            if path == "/hang":
                self.release.wait(3)
            if path == "/gather":
                with self.cond:
                    self.cond.wait_for(lambda: self.max_inflight >= 2, timeout=2)
            return 200
        finally:
            with self.cond:
                self.inflight -= 1

    def wait(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.received) >= count, timeout), \
                f"receiver got {len(self.received)} of {count} callbacks"
            return list(self.received)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def sim() -> Iterator[KieSim]:
    """A sim without rate limits (tests poll fast), with short callback backoff and 1000 credits."""
    with KieSim(default_duration_s=0.05, rate_limits=False, callback_backoff_s=FAST_BACKOFF, balance="1000") as s:
        yield s


def create(sim: KieSim, model: str = "z-image", inp: dict[str, Any] | None = None,
           callback: str | None = None, headers: dict[str, str] | None = None) -> requests.Response:
    body: dict[str, Any] = {"model": model, "input": dict(Z_OK) if inp is None else inp}
    if callback:
        body["callBackUrl"] = callback
    return requests.post(f"{sim.url}/api/v1/jobs/createTask", json=body,
                         headers=AUTH if headers is None else headers, timeout=10)


def create_id(sim: KieSim, **kwargs: Any) -> str:
    reply = create(sim, **kwargs).json()
    assert reply["code"] == 200, reply
    return reply["data"]["taskId"]


def record_response(sim: KieSim, task_id: str) -> requests.Response:
    return requests.get(f"{sim.url}/api/v1/jobs/recordInfo", params={"taskId": task_id},
                        headers=AUTH, timeout=10)


def record(sim: KieSim, task_id: str) -> dict[str, Any]:
    return record_response(sim, task_id).json()


def wait_terminal(sim: KieSim, task_id: str, timeout: float = 5.0) -> dict[str, Any]:
    wait_until(lambda: sim.tasks()[task_id]["canonical_state"] in ("success", "fail"), timeout,
               what=f"task {task_id} terminal")
    return record(sim, task_id)["data"]


def observed_states(sim: KieSim, task_id: str) -> list[str]:
    """Poll recordInfo until terminal; the distinct states seen, in order."""
    seen: list[str] = []

    def step() -> bool:
        state = record(sim, task_id)["data"]["state"]
        if not seen or seen[-1] != state:
            seen.append(state)
        return state in ("success", "fail")
    wait_until(step, timeout=5, what="terminal state", interval=0.005)
    return seen


def png_size(data: bytes) -> tuple[int, int]:
    """Check the PNG structure (signature, IHDR first, every CRC, IDAT inflates); (width, height)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, idat = 8, [], b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, payload = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + payload), f"bad CRC in {kind!r}"
        chunks.append(kind)
        idat += payload if kind == b"IDAT" else b""
        pos += 12 + length
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND"
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert (depth, colour) == (8, 2)
    assert len(zlib.decompress(idat)) == height * (1 + 3 * width)
    return width, height


def result_urls(data: dict[str, Any]) -> list[str]:
    assert isinstance(data["resultJson"], str)
    return json.loads(data["resultJson"])["resultUrls"]


def verify(key: str, task_id: str, headers: dict[str, str]) -> bool:
    ts = headers.get("X-Webhook-Timestamp", "")
    expected = base64.b64encode(hmac.new(key.encode(), f"{task_id}.{ts}".encode(), hashlib.sha256).digest())
    return hmac.compare_digest(expected, headers.get("X-Webhook-Signature", "").encode())


# ----- createTask, recordInfo, credit, lifecycle -----------------------------------------------

def test_create_task_answers_success_with_a_32_char_lowercase_hex_task_id(sim: KieSim) -> None:
    reply = create(sim)
    assert reply.status_code == 200
    body = reply.json()
    assert (body["code"], body["msg"]) == (200, "success")
    task_id = body["data"]["taskId"]
    assert len(task_id) == 32 and all(c in "0123456789abcdef" for c in task_id)


def test_task_ids_are_the_same_for_the_same_seed_and_differ_for_another() -> None:
    def ids(seed: int) -> list[str]:
        with KieSim(seed=seed) as s:
            return [create_id(s) for _ in range(3)]
    assert ids(7) == ids(7)
    assert ids(7) != ids(8)


def test_a_task_walks_waiting_queuing_generating_then_success() -> None:
    with KieSim(default_duration_s=0.3, rate_limits=False) as s:
        task_id = create_id(s)
        assert observed_states(s, task_id) == ["waiting", "queuing", "generating", "success"]


def test_a_fate_can_skip_intermediate_states(sim: KieSim) -> None:
    sim.script_next(Fate(states=("generating",), duration_s=0.2))
    assert observed_states(sim, create_id(sim)) == ["generating", "success"]


def test_odd_state_spellings_are_used_for_intermediate_states_only(sim: KieSim) -> None:
    sim.script_next(Fate(odd_state_spelling=True, duration_s=0.3))
    assert observed_states(sim, create_id(sim)) == ["Waiting", "Queueing", "GENERATING", "success"]


def test_a_finished_task_has_result_json_as_a_string_and_a_downloadable_real_png(sim: KieSim) -> None:
    data = wait_terminal(sim, create_id(sim))
    assert data["state"] == "success"
    assert (data["failCode"], data["failMsg"]) == ("", "")
    assert data["completeTime"] >= data["createTime"] and data["updateTime"] == data["completeTime"]
    assert isinstance(data["costTime"], int)
    assert data["creditsConsumed"] == 0.8
    [url] = result_urls(data)
    assert url.startswith(f"{sim.url}/files/")
    image = requests.get(url, timeout=10)
    assert image.status_code == 200 and image.headers["Content-Type"] == "image/png"
    assert png_size(image.content) == (64, 64)


def test_two_tasks_get_different_png_bytes(sim: KieSim) -> None:
    urls = [result_urls(wait_terminal(sim, create_id(sim)))[0] for _ in range(2)]
    first, second = (requests.get(u, timeout=10).content for u in urls)
    assert first != second


def test_result_count_gives_that_many_result_urls(sim: KieSim) -> None:
    sim.script_next(Fate(result_count=3))
    urls = result_urls(wait_terminal(sim, create_id(sim)))
    assert len(set(urls)) == 3
    assert all(requests.get(u, timeout=10).status_code == 200 for u in urls)


def test_param_is_the_create_request_re_serialised_including_the_callback_url(sim: KieSim) -> None:
    task_id = create_id(sim, callback="http://127.0.0.1:9/cb?token=s3cret")
    param = record(sim, task_id)["data"]["param"]
    assert isinstance(param, str)
    assert json.loads(param) == {"model": "z-image", "callBackUrl": "http://127.0.0.1:9/cb?token=s3cret",
                                 "input": Z_OK}


def test_before_terminal_result_json_is_empty_and_times_are_null(sim: KieSim) -> None:
    sim.script_next(Fate(outcome="stuck"))
    data = record(sim, create_id(sim))["data"]
    assert (data["state"], data["resultJson"], data["completeTime"], data["costTime"]) == ("waiting", "", None, None)


def test_record_info_without_task_id_answers_400(sim: KieSim) -> None:
    body = requests.get(f"{sim.url}/api/v1/jobs/recordInfo", headers=AUTH, timeout=10).json()
    assert (body["code"], body["msg"]) == (400, "taskId parameter is required")


def test_record_info_of_an_unknown_task_answers_422_record_info_is_null(sim: KieSim) -> None:
    assert record(sim, "0" * 32) == {"code": 422, "msg": "recordInfo is null", "data": None}


def test_credit_returns_a_fractional_balance_debited_by_the_price_on_success(sim: KieSim) -> None:
    def credit() -> Any:
        return requests.get(f"{sim.url}/api/v1/chat/credit", headers=AUTH, timeout=10).json()
    assert credit() == {"code": 200, "msg": "success", "data": 1000}
    wait_terminal(sim, create_id(sim))
    assert credit()["data"] == 999.2
    assert sim.balance() == Decimal("999.2")


def test_a_model_without_a_price_rule_costs_one_credit(sim: KieSim) -> None:
    spec = sim.catalogue.get("elevenlabs/sound-effect-v2")
    assert spec is not None and spec.price is None
    wait_terminal(sim, create_id(sim, model="elevenlabs/sound-effect-v2", inp={"text": "rain on a tin roof"}))
    assert sim.balance() == Decimal(999)


KLING = "kling-2.6/text-to-video"
KLING_IN = {"prompt": "waves", "sound": False, "aspect_ratio": "16:9", "duration": "10"}


def test_a_task_is_charged_what_its_price_rule_says_for_its_input(sim: KieSim) -> None:
    # Kling 2.6: 11.2 credits a second without sound, 22 with, times the duration.
    silent = wait_terminal(sim, create_id(sim, model=KLING, inp=KLING_IN))
    assert silent["creditsConsumed"] == 112
    assert sim.balance() == Decimal(888)
    loud = wait_terminal(sim, create_id(sim, model=KLING, inp={**KLING_IN, "sound": True, "duration": "5"}))
    assert loud["creditsConsumed"] == 110
    assert sim.balance() == Decimal(778)


def test_the_default_account_can_run_every_offered_model_at_its_catalogue_price_many_times() -> None:
    catalogue = load_catalogue()
    once = sum(m.price.kie_credits(m.with_defaults({})) for m in catalogue if m.offered and m.price is not None)
    with KieSim() as s:
        assert s.balance() >= 10 * once


def test_a_balance_below_the_price_of_this_input_answers_402(sim: KieSim) -> None:
    sim.set_balance("111.9")
    body = create(sim, model=KLING, inp=KLING_IN).json()
    assert (body["code"], body["msg"]) == (402, "Credits insufficient")
    assert sim.tasks() == {}
    assert create(sim, model=KLING, inp={**KLING_IN, "duration": "5"}).json()["code"] == 200  # 56 credits


def test_a_price_set_for_a_model_is_charged_until_it_is_cleared(sim: KieSim) -> None:
    sim.set_price("z-image", "3")
    assert wait_terminal(sim, create_id(sim))["creditsConsumed"] == 3
    sim.set_price(KLING, 7)
    assert wait_terminal(sim, create_id(sim, model=KLING, inp=KLING_IN))["creditsConsumed"] == 7
    sim.set_price("z-image", None)
    assert wait_terminal(sim, create_id(sim))["creditsConsumed"] == 0.8
    assert sim.balance() == Decimal("989.2")
    with pytest.raises(ValueError, match="not a model"):
        sim.set_price("no/such-model", "1")
    with pytest.raises(ValueError, match="credits >= 0"):
        sim.set_price("z-image", "-1")
    sim.set_price("z-image", "5")
    sim.reset()
    assert wait_terminal(sim, create_id(sim))["creditsConsumed"] == 0.8


def test_legacy_credit_fields_report_consume_and_remained_credits_in_records_and_callbacks(receiver: Receiver) -> None:
    with KieSim(default_duration_s=0.05, rate_limits=False, legacy_credit_fields=True, balance="1000") as s:
        ok = wait_terminal(s, create_id(s, callback=receiver.url()))
        assert (ok["consumeCredits"], ok["remainedCredits"]) == (0.8, 999.2)
        assert "creditsConsumed" not in ok
        [callback] = receiver.wait(1)
        assert (callback["body"]["data"]["consumeCredits"], callback["body"]["data"]["remainedCredits"]) == (0.8, 999.2)
        assert "creditsConsumed" not in callback["body"]["data"]
        s.script_next(Fate(outcome="fail"))
        failed = wait_terminal(s, create_id(s, callback=receiver.url()))
        assert (failed["consumeCredits"], failed["remainedCredits"]) == (0, 999.2)
        assert receiver.wait(2)[1]["body"]["data"]["consumeCredits"] == 0
        s.set_legacy_credit_fields(False)
        assert wait_terminal(s, create_id(s))["creditsConsumed"] == 0.8


def test_the_control_api_sets_a_price_and_the_credit_fields_spelling(sim: KieSim) -> None:
    ctl = f"{sim.url}/__sim"
    assert requests.post(f"{ctl}/price", json={"model": "z-image", "credits": "2.5"}, timeout=10).json()["ok"]
    assert requests.post(f"{ctl}/legacy_credit_fields", json={"on": True}, timeout=10).json()["ok"]
    data = wait_terminal(sim, create_id(sim))
    assert (data["consumeCredits"], data["remainedCredits"]) == (2.5, 997.5)
    assert requests.post(f"{ctl}/price", json={"model": "z-image", "credits": None}, timeout=10).json()["ok"]
    assert requests.post(f"{ctl}/legacy_credit_fields", json={"on": False}, timeout=10).json()["ok"]
    assert wait_terminal(sim, create_id(sim))["creditsConsumed"] == 0.8
    refused = requests.post(f"{ctl}/price", json={"model": "no/such-model", "credits": "1"}, timeout=10)
    assert refused.status_code == 400 and "not a model" in refused.json()["error"]


def test_a_fail_fate_reports_the_fail_code_and_charges_nothing(sim: KieSim) -> None:
    sim.script_next(Fate(outcome="fail", fail_code="422", fail_msg="content policy"))
    data = wait_terminal(sim, create_id(sim))
    assert (data["state"], data["failCode"], data["failMsg"], data["resultJson"]) == ("fail", "422", "content policy", "")
    assert data["creditsConsumed"] == 0
    assert sim.balance() == Decimal(1000)


def test_billing_on_create_charges_even_a_failed_task() -> None:
    with KieSim(billing="on_create", default_duration_s=0.05, balance="1000") as s:
        s.script_next(Fate(outcome="fail"))
        wait_terminal(s, create_id(s))
        assert s.balance() == Decimal("999.2")


def test_a_stuck_task_stays_waiting_until_completed_by_hand(sim: KieSim) -> None:
    sim.script_next(Fate(outcome="stuck", duration_s=0.05))
    stuck = create_id(sim)
    wait_terminal(sim, create_id(sim))  # a later, normal task of the same model finishes first
    assert record(sim, stuck)["data"]["state"] == "waiting"
    sim.complete_now(stuck)
    assert record(sim, stuck)["data"]["state"] == "success"


def test_record_info_is_null_during_the_visibility_lag_then_the_task_appears(sim: KieSim) -> None:
    sim.script_next(Fate(visibility_lag_s=0.2))
    task_id = create_id(sim)
    assert record(sim, task_id) == {"code": 422, "msg": "recordInfo is null", "data": None}
    assert task_id in sim.tasks()
    wait_until(lambda: record(sim, task_id)["code"] == 200, timeout=3, interval=0.02)


def test_script_next_hands_out_fates_first_in_first_out(sim: KieSim) -> None:
    sim.script_next(Fate(outcome="fail"), count=2)
    sim.script_next(Fate(outcome="stuck"))
    ids = [create_id(sim) for _ in range(4)]
    outcomes = [sim.tasks()[t]["fate"]["outcome"] for t in ids]
    assert outcomes == ["fail", "fail", "stuck", "success"]


def test_script_prompt_gives_a_fate_to_prompts_containing_the_keyword(sim: KieSim) -> None:
    sim.script_prompt("explode", Fate(outcome="fail", fail_msg="boom"))
    bad = create_id(sim, inp={"prompt": "please EXPLODE now", "aspect_ratio": "1:1"})
    good = create_id(sim)
    assert wait_terminal(sim, bad)["failMsg"] == "boom"
    assert wait_terminal(sim, good)["state"] == "success"


def test_force_next_answers_the_forced_code_for_exactly_n_calls(sim: KieSim) -> None:
    sim.force_next("createTask", 2, 500, "Server error")
    codes = [create(sim).json()["code"] for _ in range(3)]
    assert codes == [500, 500, 200]
    assert len(sim.tasks()) == 1
    sim.force_next("recordInfo", 1, 429)
    assert record(sim, "x")["code"] == 429


def test_forced_html_pages_come_with_their_http_status_n_times_then_kie_answers_again(sim: KieSim) -> None:
    ctl = f"{sim.url}/__sim"
    forced = requests.post(f"{ctl}/force", json={"endpoint": "recordInfo", "n": 2, "code": 403, "mode": "html"},
                           timeout=10)
    assert forced.json()["ok"]
    pages = [record_response(sim, "x") for _ in range(3)]
    assert [p.status_code for p in pages] == [403, 403, 200]
    assert pages[0].headers["content-type"] == "text/html" and "<title>403 Forbidden</title>" in pages[0].text
    assert pages[2].json()["code"] == 422
    sim.force_next("createTask", 1, 502, mode="html")
    assert create(sim).status_code == 502 and sim.tasks() == {}


@pytest.mark.parametrize(("mode", "code", "body", "expected"), [
    ("empty", 200, "", b""),
    ("raw", 200, "[]", b"[]"),
    ("raw", 200, '{"code": 200}', b'{"code": 200}'),
    ("raw", 200, '{"code":200,"data":{"taskId"', b'{"code":200,"data":{"taskId"'),
])
def test_forced_raw_bodies_are_written_exactly_as_given(sim: KieSim, mode: str, code: int, body: str,
                                                         expected: bytes) -> None:
    requests.post(f"{sim.url}/__sim/force", json={"endpoint": "createTask", "mode": mode, "code": code, "body": body},
                  timeout=10)
    answer = create(sim)
    assert (answer.status_code, answer.content) == (code, expected) and sim.tasks() == {}


def test_a_forced_cut_off_answer_closes_the_connection_halfway_through_the_body(sim: KieSim) -> None:
    sim.force_next("recordInfo", 1, 200, mode="truncated")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        record_response(sim, "x")


def test_a_forced_reset_drops_the_connection_without_an_answer(sim: KieSim) -> None:
    requests.post(f"{sim.url}/__sim/force", json={"endpoint": "createTask", "mode": "reset"}, timeout=10)
    with pytest.raises(requests.ConnectionError):
        create(sim)
    assert sim.tasks() == {} and create(sim).json()["code"] == 200


def test_an_unknown_force_mode_is_refused(sim: KieSim) -> None:
    answer = requests.post(f"{sim.url}/__sim/force", json={"endpoint": "createTask", "code": 403, "mode": "xml"},
                           timeout=10)
    assert answer.status_code == 400


def test_calls_records_every_api_call_with_its_answer(sim: KieSim) -> None:
    task_id = create_id(sim)
    record(sim, task_id)
    create(sim, headers={})
    calls = sim.calls("createTask")
    assert [c["code"] for c in calls] == [200, 401]
    assert calls[0]["body"]["model"] == "z-image" and calls[0]["method"] == "POST"
    [info] = sim.calls("recordInfo")
    assert info["query"] == {"taskId": task_id} and info["http_status"] == 200 and info["at"] > 0


def test_complete_now_jumps_a_task_to_its_terminal_state_and_fires_its_callback(sim: KieSim, receiver: Receiver) -> None:
    sim.script_next(Fate(duration_s=60))
    task_id = create_id(sim, callback=receiver.url())
    sim.complete_now(task_id)
    assert record(sim, task_id)["data"]["state"] == "success"
    assert receiver.wait(1)[0]["body"]["data"]["taskId"] == task_id


def test_reset_forgets_tasks_calls_scripts_and_restores_the_balance(sim: KieSim) -> None:
    sim.script_next(Fate(outcome="fail"), count=5)
    wait_terminal(sim, create_id(sim, inp={"prompt": "x", "aspect_ratio": "1:1"}))
    sim.set_balance("3")
    sim.reset()
    assert (sim.tasks(), sim.calls(), sim.balance()) == ({}, [], Decimal(1000))
    task_id = create_id(sim)
    assert sim.tasks()[task_id]["fate"]["outcome"] == "success"


def test_the_control_api_scripts_forces_and_inspects_over_http(sim: KieSim, receiver: Receiver) -> None:
    ctl = f"{sim.url}/__sim"
    assert requests.post(f"{ctl}/script", json={"fate": {"outcome": "fail", "fail_code": "400"}}, timeout=10).json()["ok"]
    assert requests.post(f"{ctl}/script", json={"keyword": "slowpoke", "fate": {"outcome": "stuck"}}, timeout=10).json()["ok"]
    task_id = create_id(sim, callback=receiver.url())
    assert wait_terminal(sim, task_id)["failCode"] == "400"
    sim.wait_for_callbacks(1, task_id=task_id)  # recorded once the receiver has answered
    stuck = create_id(sim, inp={"prompt": "slowpoke", "aspect_ratio": "1:1"})
    assert requests.get(f"{ctl}/tasks", timeout=10).json()["result"][stuck]["state"] == "waiting"
    callbacks = requests.get(f"{ctl}/callbacks", params={"task_id": task_id}, timeout=10).json()["result"]
    assert [c["status"] for c in callbacks] == [200]
    requests.post(f"{ctl}/force", json={"endpoint": "credit", "n": 1, "code": 455}, timeout=10)
    assert requests.get(f"{sim.url}/api/v1/chat/credit", headers=AUTH, timeout=10).json()["code"] == 455
    calls = requests.get(f"{ctl}/calls", params={"endpoint": "credit"}, timeout=10).json()["result"]
    assert [c["code"] for c in calls] == [455]
    assert requests.post(f"{ctl}/script", json={"fate": {"outcom": "fail"}}, timeout=10).status_code == 400
    requests.post(f"{ctl}/reset", timeout=10)
    assert sim.tasks() == {}


# ----- auth, envelope and error modes -------------------------------------------------------------

@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}],
                         ids=["missing", "wrong key", "no Bearer prefix"])
def test_bad_auth_answers_401_in_the_body_with_http_200(sim: KieSim, headers: dict[str, str]) -> None:
    reply = create(sim, headers=headers)
    assert reply.status_code == 200
    assert reply.json() == {"code": 401, "msg": "You do not have access permissions", "data": None}
    assert sim.tasks() == {}
    for path in ("/api/v1/chat/credit", "/api/v1/jobs/recordInfo?taskId=x"):
        assert requests.get(sim.url + path, headers=headers, timeout=10).json()["code"] == 401


def test_http_error_mode_also_puts_the_code_in_the_http_status() -> None:
    with KieSim(error_mode="http") as s:
        reply = create(s, headers={})
        assert (reply.status_code, reply.json()["code"]) == (401, 401)
        assert requests.get(f"{s.url}/api/v1/jobs/recordInfo?taskId=x", headers=AUTH, timeout=10).status_code == 422
        assert create(s).status_code == 200


def test_mixed_error_mode_picks_the_http_status_at_random_but_by_seed() -> None:
    def statuses(seed: int) -> list[int]:
        with KieSim(error_mode="mixed", seed=seed) as s:
            return [create(s, headers={}).status_code for _ in range(12)]
    first = statuses(3)
    assert set(first) == {200, 401}
    assert statuses(3) == first


def test_an_unknown_path_answers_404_in_the_envelope(sim: KieSim) -> None:
    assert requests.get(f"{sim.url}/api/v1/nope", headers=AUTH, timeout=10).json()["code"] == 404


# ----- validation, credits, maintenance, server errors ---------------------------------------------

@pytest.mark.parametrize("inp", [
    {"prompt": "x" * 1001, "aspect_ratio": "1:1"},
    {"prompt": "a fox", "aspect_ratio": "auto"},
    {"aspect_ratio": "1:1"},
    {"prompt": 42, "aspect_ratio": "1:1"},
], ids=["prompt over 1000 characters", "aspect ratio outside the enum", "missing prompt", "prompt not a string"])
def test_z_image_input_the_catalogue_refuses_answers_422_with_its_problems(sim: KieSim, inp: dict[str, Any]) -> None:
    problems = load_catalogue().get("z-image").validate(inp)
    assert problems
    body = create(sim, inp=inp).json()
    assert body["code"] == 422
    assert body["msg"] == "; ".join(problems)
    assert sim.tasks() == {}


def test_an_unknown_model_answers_422_page_does_not_exist(sim: KieSim) -> None:
    body = create(sim, model="no-such/model").json()
    assert (body["code"], body["msg"]) == (422, "The page does not exist or is not published")


def test_a_request_without_input_answers_422(sim: KieSim) -> None:
    reply = requests.post(f"{sim.url}/api/v1/jobs/createTask", json={"model": "z-image"}, headers=AUTH, timeout=10)
    assert reply.json()["code"] == 422


def test_sim_and_catalogue_agree_on_every_z_image_input() -> None:
    spec = load_catalogue().get("z-image")
    with KieSim(rate_limits=False, default_duration_s=0.01) as s:
        @settings(max_examples=40, deadline=None)
        @given(prompt=st.one_of(st.text(max_size=1100), st.integers(), st.none()),
               ratio=st.sampled_from(["1:1", "16:9", "auto", "2:1", None]),
               extra=st.booleans())
        def check(prompt: Any, ratio: Any, extra: bool) -> None:
            inp = {k: v for k, v in (("prompt", prompt), ("aspect_ratio", ratio)) if v is not None}
            if extra:
                inp["nsfw_checker"] = True
            code = create(s, inp=inp).json()["code"]
            assert code == (422 if spec.validate(inp) else 200)
        check()


def test_a_balance_below_the_price_answers_402_and_creates_nothing(sim: KieSim) -> None:
    sim.set_balance("0.5")
    body = create(sim).json()
    assert (body["code"], body["msg"]) == (402, "Credits insufficient")
    assert sim.tasks() == {}
    sim.set_balance("0.8")
    assert create(sim).json()["code"] == 200


def test_maintenance_answers_455_until_switched_off(sim: KieSim) -> None:
    sim.set_maintenance(True)
    assert create(sim).json()["code"] == 455
    assert requests.get(f"{sim.url}/api/v1/chat/credit", headers=AUTH, timeout=10).json()["code"] == 455
    sim.set_maintenance(False)
    assert create(sim).json()["code"] == 200


def test_server_error_rate_answers_500_server_error_by_seed() -> None:
    with KieSim(server_error_rate=1.0) as s:
        assert create(s).json() == {"code": 500, "msg": "Server error", "data": None}

    def codes(seed: int) -> list[int]:
        with KieSim(server_error_rate=0.5, seed=seed, rate_limits=False) as s:
            return [create(s).json()["code"] for _ in range(10)]
    assert codes(1) == codes(1) and set(codes(1)) == {200, 500}


def test_the_21st_create_task_within_10_seconds_answers_429_and_is_not_recorded() -> None:
    with KieSim(default_duration_s=0.01) as s:
        codes = [create(s).json()["code"] for _ in range(21)]
        assert codes == [200] * 20 + [429]
        assert len(s.tasks()) == 20
        assert s.calls("createTask")[-1]["code"] == 429


def test_the_11th_record_info_within_a_second_answers_429() -> None:
    with KieSim() as s:
        codes = [record(s, "0" * 32)["code"] for _ in range(11)]
        assert codes == [422] * 10 + [429]


# ----- callbacks --------------------------------------------------------------------------------

def test_a_normal_callback_posts_the_market_body_once_at_the_terminal_state(sim: KieSim, receiver: Receiver) -> None:
    task_id = create_id(sim, callback=receiver.url())
    [got] = receiver.wait(1)
    body = got["body"]
    assert (body["code"], body["msg"]) == (200, "Playground task completed successfully.")
    data = body["data"]
    assert (data["taskId"], data["model"], data["state"]) == (task_id, "z-image", "success")
    assert json.loads(data["param"])["callBackUrl"] == receiver.url()
    assert data["resultJson"] == record(sim, task_id)["data"]["resultJson"]
    assert {"costTime", "completeTime", "createTime", "updateTime", "creditsConsumed"} <= set(data)
    assert got["headers"]["Content-Type"] == "application/json"
    assert "X-Webhook-Signature" not in got["headers"]
    [attempt] = sim.wait_for_callbacks(1, task_id=task_id)
    assert (attempt["status"], attempt["attempt"], attempt["kind"]) == (200, 1, "final")


def test_a_failed_task_calls_back_with_code_501_and_the_fail_code(sim: KieSim, receiver: Receiver) -> None:
    sim.script_next(Fate(outcome="fail", fail_code="500", fail_msg="Internal error"))
    create_id(sim, callback=receiver.url())
    body = receiver.wait(1)[0]["body"]
    assert (body["code"], body["msg"]) == (501, "Playground task failed.")
    assert (body["data"]["state"], body["data"]["failCode"], body["data"]["failMsg"]) == ("fail", "500", "Internal error")
    assert body["data"]["resultJson"] is None and body["data"]["creditsConsumed"] == 0


def test_duplicate_callbacks_send_two_or_three_identical_copies_concurrently(sim: KieSim, receiver: Receiver) -> None:
    sim.script_next(Fate(callback="duplicate"))
    task_id = create_id(sim, callback=receiver.url("/gather"))
    wait_terminal(sim, task_id)
    got = receiver.wait(2)
    attempts = wait_until(lambda: len(sim.callback_attempts(task_id)) == len(receiver.received)
                          and sim.callback_attempts(task_id), timeout=3)
    assert 2 <= len(receiver.received) <= 3
    assert all(g["body"] == got[0]["body"] for g in receiver.received)
    assert receiver.max_inflight >= 2
    assert {a["kind"] for a in attempts} == {"final", "duplicate"} and all(a["status"] == 200 for a in attempts)


def test_an_early_callback_arrives_before_the_create_task_response(sim: KieSim, receiver: Receiver) -> None:
    states: list[str] = []
    receiver.hook = lambda entry: states.append(record(sim, entry["body"]["data"]["taskId"])["data"]["state"])
    sim.script_next(Fate(callback="early"))
    reply = create(sim, callback=receiver.url())
    receiver.order.append("createTask response")
    task_id = reply.json()["data"]["taskId"]
    assert receiver.order == ["callback", "createTask response"]
    assert states == ["success"]  # the receiver could re-fetch while the sim waited on it
    assert record(sim, task_id)["data"]["state"] == "success"


def test_a_late_callback_comes_its_delay_after_the_task_is_already_success(sim: KieSim, receiver: Receiver) -> None:
    sim.script_next(Fate(callback="late", callback_delay_s=0.3))
    task_id = create_id(sim, callback=receiver.url())
    data = wait_terminal(sim, task_id)
    assert data["state"] == "success" and receiver.received == []
    [got] = receiver.wait(1)
    assert got["at"] * 1000 - data["completeTime"] >= 300 - 5


def test_a_lost_callback_is_never_sent(sim: KieSim, receiver: Receiver) -> None:
    sim.script_next(Fate(callback="lost", duration_s=0.05))
    lost = create_id(sim, callback=receiver.url("/lost"))
    sim.script_next(Fate(duration_s=0.1))
    create_id(sim, callback=receiver.url("/later"))
    receiver.wait(1)  # a task finishing after the lost one has called back by now
    assert [r["path"] for r in receiver.received] == ["/later"]
    assert sim.callback_attempts(lost) == []
    assert sim.tasks()[lost]["callback_note"].startswith("lost")


def test_out_of_order_sends_the_final_body_then_a_stale_failed_one(sim: KieSim, receiver: Receiver) -> None:
    sim.script_next(Fate(callback="out_of_order"))
    create_id(sim, callback=receiver.url())
    final, stale = (g["body"] for g in receiver.wait(2))
    assert (final["code"], final["data"]["state"]) == (200, "success")
    assert (stale["code"], stale["data"]["state"]) == (501, "fail")
    assert stale["data"]["updateTime"] < final["data"]["updateTime"]


def test_out_of_order_after_a_failure_sends_a_stale_in_progress_body(sim: KieSim, receiver: Receiver) -> None:
    sim.script_next(Fate(outcome="fail", callback="out_of_order"))
    create_id(sim, callback=receiver.url())
    final, stale = (g["body"] for g in receiver.wait(2))
    assert (final["data"]["state"], stale["data"]["state"]) == ("fail", "generating")


def test_a_receiver_answering_500_gets_one_attempt_and_three_retries_then_the_sim_gives_up(sim: KieSim, receiver: Receiver) -> None:
    task_id = create_id(sim, callback=receiver.url("/fail"))
    attempts = sim.wait_for_callbacks(4, task_id=task_id)
    assert [(a["attempt"], a["status"], a["will_retry"]) for a in attempts] == [
        (1, 500, True), (2, 500, True), (3, 500, True), (4, 500, False)]
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(attempts)]
    assert all(g >= d * 0.9 for g, d in zip(gaps, FAST_BACKOFF))


def test_a_retry_that_succeeds_stops_the_retries(sim: KieSim, receiver: Receiver) -> None:
    task_id = create_id(sim, callback=receiver.url("/flaky/2"))
    attempts = sim.wait_for_callbacks(3, task_id=task_id)
    assert [(a["status"], a["will_retry"]) for a in attempts] == [(500, True), (500, True), (200, False)]


def test_a_receiver_that_does_not_answer_in_time_counts_as_a_failed_attempt(receiver: Receiver) -> None:
    with KieSim(default_duration_s=0.01, callback_timeout_s=0.2, callback_retries=1,
                callback_backoff_s=(0.01,)) as s:
        task_id = create_id(s, callback=receiver.url("/hang"))
        attempts = s.wait_for_callbacks(2, task_id=task_id)
        assert [a["error"] for a in attempts] == ["timeout after 0.2s"] * 2
        assert attempts[-1]["will_retry"] is False


def test_a_connection_error_is_retried_and_recorded(sim: KieSim) -> None:
    with refusing_port() as port:
        task_id = create_id(sim, callback=f"http://127.0.0.1:{port}/cb")
        attempts = sim.wait_for_callbacks(4, task_id=task_id)
    assert all(a["status"] is None and "ConnectionRefused" in a["error"] for a in attempts)


def test_wait_for_callbacks_raises_when_they_do_not_come(sim: KieSim) -> None:
    with pytest.raises(TimeoutError):
        sim.wait_for_callbacks(1, timeout=0.05)


def test_with_retries_off_a_failed_callback_is_tried_once(receiver: Receiver) -> None:
    with KieSim(default_duration_s=0.01, callback_retries=0) as s:
        s.script_next(Fate(outcome="fail"))
        task_id = create_id(s, callback=receiver.url("/fail"))
        [attempt] = s.wait_for_callbacks(1, task_id=task_id)
        assert attempt["will_retry"] is False


def test_a_callback_url_off_loopback_is_refused_and_never_contacted(sim: KieSim) -> None:
    task_id = create_id(sim, callback="http://example.com/hook")
    [attempt] = sim.wait_for_callbacks(1, task_id=task_id)
    assert attempt["refused"] and attempt["status"] is None and not attempt["will_retry"]


def test_a_task_without_callback_url_sends_nothing(sim: KieSim) -> None:
    task_id = create_id(sim)
    wait_terminal(sim, task_id)
    assert sim.tasks()[task_id]["callback_note"] == "no callBackUrl" and sim.callback_attempts() == []


# ----- HMAC-signed callbacks ---------------------------------------------------------------------

@pytest.fixture
def signed() -> Iterator[KieSim]:
    with KieSim(default_duration_s=0.05, rate_limits=False, hmac_key="whsec-test",
                callback_backoff_s=FAST_BACKOFF) as s:
        yield s


def test_a_signed_callback_carries_a_valid_timestamp_and_signature(signed: KieSim, receiver: Receiver) -> None:
    task_id = create_id(signed, callback=receiver.url())
    headers = receiver.wait(1)[0]["headers"]
    assert verify("whsec-test", task_id, headers)
    assert abs(int(headers["X-Webhook-Timestamp"]) - time.time()) < 5


def test_a_bad_signature_does_not_verify(signed: KieSim, receiver: Receiver) -> None:
    signed.script_next(Fate(signature="bad"))
    task_id = create_id(signed, callback=receiver.url())
    headers = receiver.wait(1)[0]["headers"]
    assert "X-Webhook-Signature" in headers and not verify("whsec-test", task_id, headers)


def test_a_stale_timestamp_is_ten_minutes_old_but_correctly_signed(signed: KieSim, receiver: Receiver) -> None:
    signed.script_next(Fate(signature="stale"))
    task_id = create_id(signed, callback=receiver.url())
    headers = receiver.wait(1)[0]["headers"]
    assert verify("whsec-test", task_id, headers)
    assert 590 <= time.time() - int(headers["X-Webhook-Timestamp"]) <= 610


def test_missing_signature_headers_are_left_out(signed: KieSim, receiver: Receiver) -> None:
    signed.script_next(Fate(signature="missing"))
    create_id(signed, callback=receiver.url())
    headers = receiver.wait(1)[0]["headers"]
    assert "X-Webhook-Signature" not in headers and "X-Webhook-Timestamp" not in headers


def test_a_replay_reuses_a_valid_signature_on_a_tampered_body(signed: KieSim, receiver: Receiver) -> None:
    signed.script_next(Fate(signature="replayed_tampered"))
    task_id = create_id(signed, callback=receiver.url())
    genuine, replay = receiver.wait(2)
    for name in ("X-Webhook-Timestamp", "X-Webhook-Signature"):
        assert genuine["headers"][name] == replay["headers"][name]
    assert verify("whsec-test", task_id, replay["headers"])
    real = result_urls(record(signed, task_id)["data"])
    assert result_urls(genuine["body"]["data"]) == real
    assert result_urls(replay["body"]["data"]) != real
    assert [a["kind"] for a in signed.wait_for_callbacks(2, task_id=task_id)] == ["final", "tampered"]


# ----- result files, expiry, download-url ----------------------------------------------------------

def test_result_files_answer_404_after_the_result_ttl() -> None:
    with KieSim(default_duration_s=0.01, result_ttl_s=0.2, rate_limits=False) as s:
        [url] = result_urls(wait_terminal(s, create_id(s)))
        assert requests.get(url, timeout=10).status_code == 200
        wait_until(lambda: requests.get(url, timeout=10).status_code == 404, timeout=3, interval=0.05)


def test_download_url_gives_a_fresh_link_that_works_even_after_the_result_expired() -> None:
    with KieSim(default_duration_s=0.01, result_ttl_s=0.1, rate_limits=False) as s:
        [url] = result_urls(wait_terminal(s, create_id(s)))
        original = requests.get(url, timeout=10).content
        wait_until(lambda: requests.get(url, timeout=10).status_code == 404, timeout=3, interval=0.05)
        body = requests.post(f"{s.url}/api/v1/common/download-url", json={"url": url}, headers=AUTH, timeout=10).json()
        assert body["code"] == 200 and body["data"] != url
        assert requests.get(body["data"], timeout=10).content == original


def test_a_download_url_link_expires() -> None:
    with KieSim(default_duration_s=0.01, download_url_ttl_s=0.1, rate_limits=False) as s:
        [url] = result_urls(wait_terminal(s, create_id(s)))
        link = requests.post(f"{s.url}/api/v1/common/download-url", json={"url": url}, headers=AUTH, timeout=10).json()["data"]
        wait_until(lambda: requests.get(link, timeout=10).status_code == 404, timeout=3, interval=0.05)


@pytest.mark.parametrize("url", ["https://example.com/a.png", "{sim}/files/unknown.png"],
                         ids=["a foreign URL", "an unknown file on the sim"])
def test_download_url_answers_422_for_a_url_that_is_not_a_sim_result(sim: KieSim, url: str) -> None:
    body = requests.post(f"{sim.url}/api/v1/common/download-url", json={"url": url.format(sim=sim.url)},
                         headers=AUTH, timeout=10).json()
    assert body["code"] == 422


def test_a_video_model_yields_an_mp4(sim: KieSim) -> None:
    sim.script_next(Fate(duration_s=0.05))
    inp = {"prompt": "waves", "sound": False, "aspect_ratio": "16:9", "duration": "5"}
    [url] = result_urls(wait_terminal(sim, create_id(sim, model="kling-2.6/text-to-video", inp=inp)))
    reply = requests.get(url, timeout=10)
    assert reply.headers["Content-Type"] == "video/mp4" and url.endswith(".mp4")
    assert reply.content[4:8] == b"ftyp" and b"moov" in reply.content and b"mdat" in reply.content


def test_an_audio_model_yields_an_mp3(sim: KieSim) -> None:
    sim.script_next(Fate(duration_s=0.05))
    task_id = create_id(sim, model="elevenlabs/text-to-speech-turbo-2-5", inp={"text": "hello"})
    [url] = result_urls(wait_terminal(sim, task_id))
    reply = requests.get(url, timeout=10)
    assert reply.headers["Content-Type"] == "audio/mpeg"
    data = reply.content
    assert data[:3] == b"ID3"
    tag_end = 10 + ((data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9])
    assert data[tag_end:tag_end + 2] == b"\xff\xfb"
    assert data[tag_end + 417:tag_end + 419] == b"\xff\xfb"  # frames are back to back


def test_a_text_model_yields_a_result_object(sim: KieSim) -> None:
    task_id = create_id(sim, model="elevenlabs/speech-to-text", inp={"audio_url": "http://127.0.0.1/a.mp3"})
    data = wait_terminal(sim, task_id)
    assert "resultObject" in json.loads(data["resultJson"])


@settings(max_examples=50, deadline=None)
@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_generated_media_is_valid_and_distinct_per_seed(a: str, b: str) -> None:
    assert png_size(png_bytes(a)) == (64, 64)
    assert mp4_bytes(a)[4:8] == b"ftyp" and mp3_bytes(a)[:3] == b"ID3"
    if a != b:
        assert png_bytes(a) != png_bytes(b) and mp4_bytes(a) != mp4_bytes(b)


# ----- upload host ------------------------------------------------------------------------------

PNG = png_bytes("upload")


def upload(sim: KieSim, kind: str, headers: dict[str, str] | None = None, **kwargs: Any) -> dict[str, Any]:
    return requests.post(f"{sim.upload_url}/api/{kind}", headers=AUTH if headers is None else headers,
                         timeout=10, **kwargs).json()


def test_a_stream_upload_is_stored_and_served_until_it_expires() -> None:
    with KieSim(upload_ttl_s=0.3) as s:
        body = upload(s, "file-stream-upload", files={"file": ("cat.png", PNG, "image/png")},
                      data={"uploadPath": "images/user", "fileName": "cat.png"})
        assert (body["success"], body["code"]) == (True, 200)
        data = body["data"]
        assert (data["fileName"], data["originalName"], data["fileSize"], data["mimeType"], data["uploadPath"]) == (
            "cat.png", "cat.png", len(PNG), "image/png", "images/user")
        assert data["downloadUrl"].startswith(s.upload_url) and len(data["fileId"]) == 32
        assert data["uploadTime"].endswith("Z") and data["expiresAt"] > data["uploadTime"]
        served = requests.get(data["downloadUrl"], timeout=10)
        assert served.content == PNG and served.headers["Content-Type"] == "image/png"
        wait_until(lambda: requests.get(data["fileUrl"], timeout=10).status_code == 404, timeout=3, interval=0.05)


@pytest.mark.parametrize("payload", [base64.b64encode(PNG).decode(),
                                     "data:image/png;base64," + base64.b64encode(PNG).decode()],
                         ids=["raw base64", "a data URL"])
def test_a_base64_upload_accepts_raw_base64_and_data_urls(sim: KieSim, payload: str) -> None:
    body = upload(sim, "file-base64-upload", json={"base64Data": payload, "uploadPath": "img"})
    assert body["success"] and body["data"]["mimeType"] == "image/png"
    assert requests.get(body["data"]["downloadUrl"], timeout=10).content == PNG


def test_a_url_upload_fetches_from_loopback_only(sim: KieSim) -> None:
    [url] = result_urls(wait_terminal(sim, create_id(sim)))
    body = upload(sim, "file-url-upload", json={"fileUrl": url, "uploadPath": "copies"})
    assert body["success"] and body["data"]["mimeType"] == "image/png"
    assert requests.get(body["data"]["fileUrl"], timeout=10).content == requests.get(url, timeout=10).content
    refused = upload(sim, "file-url-upload", json={"fileUrl": "https://example.com/x.png", "uploadPath": "p"})
    assert (refused["success"], refused["code"]) == (False, 400)


def test_upload_requests_with_bad_input_answer_400(sim: KieSim) -> None:
    assert upload(sim, "file-base64-upload", json={"base64Data": "@@not base64@@", "uploadPath": "p"})["code"] == 400
    assert upload(sim, "file-base64-upload", json={"base64Data": "aGk="})["code"] == 400
    assert upload(sim, "file-stream-upload", data={"uploadPath": "p"})["code"] == 400


def test_the_upload_host_needs_the_bearer_key_too(sim: KieSim) -> None:
    reply = requests.post(f"{sim.upload_url}/api/file-base64-upload", json={"base64Data": "aGk=", "uploadPath": "p"},
                          timeout=10)
    assert reply.status_code == 200
    assert reply.json() == {"success": False, "code": 401, "msg": "You do not have access permissions", "data": None}


def test_upload_calls_are_logged_and_can_be_forced(sim: KieSim) -> None:
    sim.force_next("file-base64-upload", 1, 500)
    assert upload(sim, "file-base64-upload", json={"base64Data": "aGk=", "uploadPath": "p"})["code"] == 500
    assert upload(sim, "file-base64-upload", json={"base64Data": "aGk=", "uploadPath": "p"})["code"] == 200
    assert [c["code"] for c in sim.calls("file-base64-upload")] == [500, 200]
    assert sim.calls("file-base64-upload")[0]["body"]["base64Data"] == "<4 chars>"
