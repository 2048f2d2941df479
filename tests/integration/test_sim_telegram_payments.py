"""Telegram Stars in the Telegram simulator, driven over real HTTP as the bot would drive Telegram.

Invoices and invoice links, the pre_checkout_query and its deadline, successful_payment
messages (and their redelivery), refunds, Star transactions, the spec's validation, both update
delivery modes, python-telegram-bot parsing every payment object unmodified, the control API and
the web chat page's Pay button. No test sleeps: waits are on the simulator's conditions.
"""
from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from telegram import LabeledPrice, Update
from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, PreCheckoutQueryHandler, filters

from sim.telegram import PaymentOutcome, TelegramSim
from sim.telegram_spec import Spec
from tests.support.cdp import Chromium
from tests.support.waiting import wait_until

USER = 4242
OTHER = 4343
GROUP = -100200300
TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
PACK = {"title": "100 credits", "description": "Top up 100 credits", "payload": "pack:100",
        "currency": "XTR", "prices": [{"label": "100 credits", "amount": 50}]}


# ---------------------------------------------------------------- helpers and fixtures

@pytest.fixture
def sim() -> Iterator[TelegramSim]:
    with TelegramSim(pre_checkout_timeout_s=5.0) as running:
        running.user_sends(USER, "/buy")
        yield running


def call(sim: TelegramSim, method: str, **params: Any) -> requests.Response:
    return requests.post(f"{sim.url}/bot{sim.token}/{method}", json=params, timeout=10)


def ok(response: requests.Response) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True
    return body["result"]


def refused(response: requests.Response, status: int = 400) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["ok"] is False and body["error_code"] == status
    return str(body["description"])


def invoice(sim: TelegramSim, chat_id: int = USER, **changes: Any) -> dict[str, Any]:
    """The bot sends a Stars invoice for the 100-credit pack."""
    return ok(call(sim, "sendInvoice", chat_id=chat_id, **{**PACK, **changes}))


def updates(sim: TelegramSim, after: int = 0) -> list[dict[str, Any]]:
    """Pending updates newer than `after`, as getUpdates returns them (timeout 0)."""
    return ok(call(sim, "getUpdates", offset=after + 1, timeout=0))


def paid(sim: TelegramSim, user_id: int = USER, **where: Any) -> tuple[str, str]:
    """A user pays and the bot confirms in time: (query id, charge id)."""
    attempt = sim.user_pays(user_id, **where)
    assert ok(call(sim, "answerPreCheckoutQuery", pre_checkout_query_id=attempt.query_id, ok=True))
    ended = sim.wait_for_payment(attempt.query_id)
    assert ended.outcome is PaymentOutcome.PAID and ended.charge_id
    return attempt.query_id, ended.charge_id


class Webhook:
    """A loopback HTTP server that records the updates POSTed to it, like the bot's webhook."""

    def __init__(self) -> None:
        self.updates: list[dict[str, Any]] = []
        self.changed = threading.Condition()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with hook.changed:
                    hook.updates.append(json.loads(body))
                    hook.changed.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05})
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.updates) >= count, timeout), \
                f"timed out waiting for {count} webhook updates; got {self.updates}"
            return list(self.updates)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


# ---------------------------------------------------------------- invoices

def test_an_invoice_message_carries_the_invoice_and_a_pay_button_first(sim: TelegramSim) -> None:
    message = invoice(sim, start_parameter="buy-100")
    assert message["invoice"] == {"title": "100 credits", "description": "Top up 100 credits",
                                  "start_parameter": "buy-100", "currency": "XTR",
                                  "total_amount": 50}
    assert message["reply_markup"] == {"inline_keyboard": [[{"text": "Pay ⭐50", "pay": True}]]}
    Spec().check_object("Message", message)
    shown = sim.chat(USER)[-1]
    assert (shown.from_bot, shown.invoice, shown.buttons) == (True, message["invoice"],
                                                              [[("Pay ⭐50", "")]])

    own = {"inline_keyboard": [[{"text": "Pay 50 stars", "pay": True}],
                               [{"text": "Cancel", "callback_data": "buy:cancel"}]]}
    assert invoice(sim, reply_markup=own)["reply_markup"] == own


@pytest.mark.parametrize(("changes", "reason"), [
    ({"prices": [{"label": "a", "amount": 40}, {"label": "b", "amount": 10}]}, "STARS_INVOICE_INVALID"),
    ({"prices": []}, "STARS_INVOICE_INVALID"),
    ({"payload": None}, 'parameter "payload" is required'),
    ({"payload": ""}, "INVOICE_PAYLOAD_INVALID"),
    ({"payload": "x" * 129}, "INVOICE_PAYLOAD_INVALID"),
    ({"prices": [{"label": "a"}]}, 'field "amount" must be present'),
    ({"prices": [{"label": "a", "amount": "many"}]}, 'field "amount" must be an Integer'),
    ({"prices": [{"label": "a", "amount": 0}]}, "CURRENCY_TOTAL_AMOUNT_INVALID"),
    ({"currency": "USD"}, "PAYMENT_PROVIDER_INVALID"),
    ({"currency": "USD", "provider_token": "284685063:TEST:abc"}, "PAYMENT_PROVIDER_INVALID"),
    ({"provider_token": "284685063:TEST:abc"}, "PAYMENT_PROVIDER_INVALID"),
    ({"max_tip_amount": 10}, "STARS_INVOICE_INVALID"),
    ({"title": ""}, "TITLE_INVALID"),
    ({"title": "t" * 33}, "TITLE_INVALID"),
    ({"description": "d" * 256}, "DESCRIPTION_INVALID"),
    ({"reply_markup": {"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]}},
     "REPLY_MARKUP_BUY_EMPTY"),
])
def test_invalid_invoices_are_refused_like_telegram_does(sim: TelegramSim, changes: dict[str, Any],
                                                         reason: str) -> None:
    params = {k: v for k, v in {**PACK, **changes}.items() if v is not None}
    assert reason in refused(call(sim, "sendInvoice", chat_id=USER, **params))
    link_params = {k: v for k, v in params.items() if k != "reply_markup"}
    if "reply_markup" not in changes:
        assert reason in refused(call(sim, "createInvoiceLink", **link_params))
    assert [m.invoice for m in sim.chat(USER)] == [None]


def test_an_invoice_to_a_chat_nobody_wrote_in_is_chat_not_found(sim: TelegramSim) -> None:
    assert refused(call(sim, "sendInvoice", chat_id=999, **PACK)) == "Bad Request: chat not found"


def test_an_empty_provider_token_is_accepted_for_stars(sim: TelegramSim) -> None:
    assert invoice(sim, provider_token="")["invoice"]["total_amount"] == 50


# ---------------------------------------------------------------- the payment flow

def test_paying_asks_the_bot_then_an_ok_answer_charges_and_reports_the_payment(
        sim: TelegramSim) -> None:
    spec = Spec()
    sent = invoice(sim)
    seen = updates(sim)[-1]["update_id"]
    attempt = sim.user_pays(USER)
    assert (attempt.outcome, attempt.invoice_message_id, attempt.chat_id) == (
        PaymentOutcome.PENDING, sent["message_id"], USER)

    [asked] = updates(sim, seen)
    spec.check_object("Update", asked)
    assert asked["update_id"] == attempt.update_id
    assert asked["pre_checkout_query"] == {
        "id": attempt.query_id, "from": {"id": USER, "is_bot": False, "first_name": "Test",
                                         "language_code": "en"},
        "currency": "XTR", "total_amount": 50, "invoice_payload": "pack:100"}
    assert updates(sim, asked["update_id"]) == []    # nothing is charged before the answer

    assert ok(call(sim, "answerPreCheckoutQuery", pre_checkout_query_id=attempt.query_id,
                   ok=True)) is True
    ended = sim.wait_for_payment(attempt.query_id)
    assert ended.outcome is PaymentOutcome.PAID and ended.answered_after_s is not None
    [reported] = updates(sim, asked["update_id"])
    spec.check_object("Update", reported)
    assert reported["update_id"] == ended.payment_update_id
    message = reported["message"]
    assert (message["from"]["id"], message["chat"]["id"]) == (USER, USER)
    assert message["successful_payment"] == {
        "currency": "XTR", "total_amount": 50, "invoice_payload": "pack:100",
        "telegram_payment_charge_id": ended.charge_id,
        "provider_payment_charge_id": ended.provider_charge_id}
    [payment] = sim.star_payments()
    assert (payment.charge_id, payment.user_id, payment.amount, payment.payload,
            payment.refunded) == (ended.charge_id, USER, 50, "pack:100", False)
    assert sim.chat(USER)[-1].service == "You paid ⭐50"
    with pytest.raises(ValueError, match="already paid"):
        sim.user_pays(USER, sent["message_id"])


def test_a_declined_pre_checkout_charges_nothing_and_keeps_the_reason(sim: TelegramSim) -> None:
    invoice(sim)
    seen = updates(sim)[-1]["update_id"]
    attempt = sim.user_pays(USER)
    assert "error_message" in refused(call(sim, "answerPreCheckoutQuery",
                                           pre_checkout_query_id=attempt.query_id, ok=False))
    assert ok(call(sim, "answerPreCheckoutQuery", pre_checkout_query_id=attempt.query_id,
                   ok=False, error_message="That pack is sold out"))
    ended = sim.wait_for_payment(attempt.query_id)
    assert (ended.outcome, ended.error_message, ended.charge_id) == (
        PaymentOutcome.DECLINED, "That pack is sold out", None)
    assert refused(call(sim, "answerPreCheckoutQuery", pre_checkout_query_id=attempt.query_id,
                        ok=True)) == TOO_OLD
    assert [list(u) for u in updates(sim, seen)] == [["update_id", "pre_checkout_query"]]
    assert sim.star_payments() == []
    assert ok(call(sim, "getStarTransactions")) == {"transactions": []}
    assert sim.user_pays(USER).invoice_payload == "pack:100"   # the invoice can still be paid


def test_an_answer_after_the_deadline_fails_the_payment_and_gets_400(sim: TelegramSim) -> None:
    sim.set_pre_checkout_timeout(0.5)
    invoice(sim)
    seen = updates(sim)[-1]["update_id"]
    never = sim.user_pays(USER)
    ended = sim.wait_for_payment(never.query_id, timeout=5)   # wakes at the deadline
    assert (ended.outcome, ended.timeout_s, ended.charge_id) == (PaymentOutcome.EXPIRED, 0.5, None)
    assert refused(call(sim, "answerPreCheckoutQuery", pre_checkout_query_id=never.query_id,
                        ok=True)) == TOO_OLD

    sim.slow("answerPreCheckoutQuery", 0.8)     # an answer on its way when the deadline passes
    late = sim.user_pays(USER)
    assert refused(call(sim, "answerPreCheckoutQuery", pre_checkout_query_id=late.query_id,
                        ok=True)) == TOO_OLD
    assert sim.payment_attempt(late.query_id).outcome is PaymentOutcome.EXPIRED
    assert [list(u)[1] for u in updates(sim, seen)] == ["pre_checkout_query"] * 2
    assert sim.star_payments() == []


def test_unknown_and_repeated_answers_are_too_old(sim: TelegramSim) -> None:
    assert refused(call(sim, "answerPreCheckoutQuery", pre_checkout_query_id="123",
                        ok=True)) == TOO_OLD
    invoice(sim)
    query_id, _ = paid(sim)
    assert refused(call(sim, "answerPreCheckoutQuery", pre_checkout_query_id=query_id,
                        ok=True)) == TOO_OLD
    assert len(sim.star_payments()) == 1


def test_a_bot_that_leaves_pre_checkout_out_of_allowed_updates_never_sees_it(
        sim: TelegramSim) -> None:
    sim.set_pre_checkout_timeout(0.3)
    invoice(sim)
    seen = updates(sim)[-1]["update_id"]
    attempt = sim.user_pays(USER)
    assert ok(call(sim, "getUpdates", offset=seen + 1, timeout=0,
                   allowed_updates=["message", "callback_query"])) == []
    assert sim.wait_for_payment(attempt.query_id).outcome is PaymentOutcome.EXPIRED


def test_an_invoice_in_a_group_and_a_deleted_invoice(sim: TelegramSim) -> None:
    sim.user_sends(OTHER, "/buy", chat_id=GROUP)
    sent = invoice(sim, chat_id=GROUP)
    paid(sim, OTHER, chat_id=GROUP)
    assert sim.chat(GROUP)[-1].service == "You paid ⭐50"
    assert [(p.user_id, p.chat_id) for p in sim.star_payments()] == [(OTHER, GROUP)]
    assert sim.user_pays(USER, chat_id=GROUP).user_id == USER   # another member may pay too

    gone = invoice(sim)
    assert ok(call(sim, "deleteMessage", chat_id=USER, message_id=gone["message_id"]))
    with pytest.raises(LookupError, match=f"no invoice message {gone['message_id']}"):
        sim.user_pays(USER, gone["message_id"])
    assert sim.payment_attempts()[-1].invoice_message_id == sent["message_id"]


def test_an_invoice_link_is_paid_from_the_private_chat_by_anyone_any_number_of_times(
        sim: TelegramSim) -> None:
    link = ok(call(sim, "createInvoiceLink", **PACK))
    assert link.startswith("https://t.me/$") and len(link) > len("https://t.me/$") + 8
    assert ok(call(sim, "createInvoiceLink", **PACK)) != link
    first = paid(sim, USER, link=link)[1]
    second = paid(sim, USER, link=link)[1]
    third = paid(sim, OTHER, link=link)[1]     # someone who never wrote to the bot
    assert len({first, second, third}) == 3
    assert [(p.user_id, p.chat_id, p.amount) for p in sim.star_payments()] == [
        (USER, USER, 50), (USER, USER, 50), (OTHER, OTHER, 50)]
    assert sim.chat(OTHER)[-1].service == "You paid ⭐50"
    with pytest.raises(LookupError, match="no invoice link"):
        sim.user_pays(USER, link="https://t.me/$nope")
    with pytest.raises(ValueError, match="not both"):
        sim.user_pays(USER, 2, link=link)


# ---------------------------------------------------------------- refunds and transactions

def test_a_charge_is_refunded_once_then_charge_already_refunded(sim: TelegramSim) -> None:
    invoice(sim)
    _, charge_id = paid(sim)
    seen = updates(sim)[-1]["update_id"]
    assert refused(call(sim, "refundStarPayment", user_id=USER,
                        telegram_payment_charge_id="stxnope")) == "Bad Request: CHARGE_NOT_FOUND"
    assert refused(call(sim, "refundStarPayment", user_id=OTHER,
                        telegram_payment_charge_id=charge_id)) == "Bad Request: CHARGE_NOT_FOUND"
    assert ok(call(sim, "refundStarPayment", user_id=USER,
                   telegram_payment_charge_id=charge_id)) is True
    assert refused(call(sim, "refundStarPayment", user_id=USER, telegram_payment_charge_id=charge_id)
                   ) == "Bad Request: CHARGE_ALREADY_REFUNDED"
    assert [(p.charge_id, p.refunded) for p in sim.star_payments()] == [(charge_id, True)]
    [notice] = updates(sim, seen)            # Telegram's refunded_payment service message
    Spec().check_object("Update", notice)
    assert notice["message"]["refunded_payment"] == {
        "currency": "XTR", "total_amount": 50, "invoice_payload": "pack:100",
        "telegram_payment_charge_id": charge_id,
        "provider_payment_charge_id": sim.star_payments()[0].provider_charge_id}
    assert sim.chat(USER)[-1].service == "⭐50 refunded"


def test_star_transactions_list_payments_in_and_refunds_out_newest_first(sim: TelegramSim) -> None:
    invoice(sim)
    _, first = paid(sim)
    invoice(sim, payload="pack:500", prices=[{"label": "500 credits", "amount": 200}])
    _, second = paid(sim)
    assert ok(call(sim, "refundStarPayment", user_id=USER, telegram_payment_charge_id=first))
    listed = ok(call(sim, "getStarTransactions"))
    Spec().check_object("StarTransactions", listed)
    user = listed["transactions"][0]["receiver"]["user"]
    assert [(t["id"], t["amount"], t.get("source"), t.get("receiver"))
            for t in listed["transactions"]] == [
        (first, 50, None, {"type": "user", "transaction_type": "invoice_payment", "user": user,
                           "invoice_payload": "pack:100"}),
        (second, 200, {"type": "user", "transaction_type": "invoice_payment", "user": user,
                       "invoice_payload": "pack:500"}, None),
        (first, 50, {"type": "user", "transaction_type": "invoice_payment", "user": user,
                     "invoice_payload": "pack:100"}, None)]
    assert user["id"] == USER and all(isinstance(t["date"], int) for t in listed["transactions"])
    page = ok(call(sim, "getStarTransactions", offset=1, limit=1))["transactions"]
    assert [t["id"] for t in page] == [second]
    assert "limit" in refused(call(sim, "getStarTransactions", limit=101))
    assert "limit" in refused(call(sim, "getStarTransactions", limit=0))


def test_redelivery_sends_the_same_successful_payment_as_a_new_update(sim: TelegramSim) -> None:
    invoice(sim)
    query_id, charge_id = paid(sim)
    first = sim.payment_attempt(query_id).payment_update_id
    assert first is not None
    again = sim.redeliver_successful_payment(charge_id)
    assert again > first
    delivered = {u["update_id"]: u["message"] for u in updates(sim) if "message" in u}
    assert delivered[again] == delivered[first]
    assert delivered[again]["successful_payment"]["telegram_payment_charge_id"] == charge_id
    assert len(sim.star_payments()) == 1            # a redelivery charges nothing
    with pytest.raises(LookupError, match="no Stars charge"):
        sim.redeliver_successful_payment("stxnope")


def test_reset_forgets_payments_and_charge_ids_never_repeat(sim: TelegramSim) -> None:
    charges = set()
    for _ in range(3):
        sim.user_sends(USER, "/buy")
        invoice(sim)
        query_id, charge_id = paid(sim)
        charges.add(charge_id)
        sim.reset()
        assert (sim.star_payments(), sim.payment_attempts()) == ([], [])
        assert ok(call(sim, "getStarTransactions")) == {"transactions": []}
        with pytest.raises(LookupError):
            sim.payment_attempt(query_id)
        assert refused(call(sim, "refundStarPayment", user_id=USER,
                            telegram_payment_charge_id=charge_id)) == "Bad Request: CHARGE_NOT_FOUND"
    with TelegramSim() as another:          # same seed, another instance: still new charge ids
        another.user_sends(USER, "/buy")
        invoice(another)
        charges.add(paid(another)[1])
    assert len(charges) == 4


# ---------------------------------------------------------------- delivery modes and PTB

def test_a_webhook_bot_gets_the_pre_checkout_query_and_the_payment(sim: TelegramSim,
                                                                 webhook: Webhook) -> None:
    invoice(sim)
    assert ok(call(sim, "setWebhook", url=webhook.url, drop_pending_updates=True))
    attempt = sim.user_pays(USER)
    [asked] = webhook.wait_for(1)
    assert asked["pre_checkout_query"]["id"] == attempt.query_id
    assert ok(call(sim, "answerPreCheckoutQuery", pre_checkout_query_id=attempt.query_id, ok=True))
    charge_id = sim.wait_for_payment(attempt.query_id).charge_id
    sim.redeliver_successful_payment(str(charge_id))
    posted = webhook.wait_for(3)
    assert [u["message"]["successful_payment"]["telegram_payment_charge_id"]
            for u in posted[1:]] == [charge_id, charge_id]
    assert len({u["update_id"] for u in posted}) == 3


def test_ptb_sells_stars_through_the_simulator_unmodified(sim: TelegramSim) -> None:
    credited: list[str] = []

    async def pre_checkout(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.pre_checkout_query
        assert query is not None
        if query.invoice_payload == "pack:100":
            await query.answer(ok=True)
        else:
            await query.answer(ok=False, error_message="Unknown pack")

    async def successful(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.message.successful_payment is not None
        credited.append(update.message.successful_payment.telegram_payment_charge_id)

    async def scenario() -> None:
        app = (ApplicationBuilder().token(sim.token).base_url(f"{sim.url}/bot")
               .base_file_url(f"{sim.url}/file/bot").build())
        app.add_handler(PreCheckoutQueryHandler(pre_checkout))
        app.add_handler(MessageHandler(filters.SUCCESSFUL_PAYMENT, successful))
        async with app:
            await app.start()
            assert app.updater is not None
            await app.updater.start_polling(timeout=1, allowed_updates=Update.ALL_TYPES)
            bot = app.bot
            sent = await bot.send_invoice(USER, "100 credits", "Top up", "pack:100", "XTR",
                                          [LabeledPrice("100 credits", 50)])
            assert sent.invoice is not None and sent.invoice.total_amount == 50
            bogus = await bot.send_invoice(USER, "1 credit", "Test", "pack:1", "XTR",
                                           [LabeledPrice("1 credit", 1)])
            link = await bot.create_invoice_link("100 credits", "Top up", "pack:100", "XTR",
                                                 [LabeledPrice("100 credits", 50)])
            good = await asyncio.to_thread(sim.user_pays, USER, sent.message_id)
            bad = await asyncio.to_thread(sim.user_pays, USER, bogus.message_id)
            by_link = await asyncio.to_thread(sim.user_pays, OTHER, link=link)
            ended = [await asyncio.to_thread(sim.wait_for_payment, a.query_id)
                     for a in (good, bad, by_link)]
            assert [a.outcome for a in ended] == [PaymentOutcome.PAID, PaymentOutcome.DECLINED,
                                                  PaymentOutcome.PAID]
            assert ended[1].error_message == "Unknown pack"
            await asyncio.to_thread(wait_until, lambda: len(credited) == 2, 5.0,
                                    "both payments handled by the bot")
            charge = str(ended[0].charge_id)
            assert await bot.refund_star_payment(USER, charge) is True
            history = await bot.get_star_transactions()
            assert [(t.id, t.amount, t.source is None) for t in history.transactions] == [
                (charge, 50, True), (ended[2].charge_id, 50, False), (charge, 50, False)]
            assert history.transactions[1].source.user.id == OTHER
            assert history.transactions[1].source.invoice_payload == "pack:100"
            await app.updater.stop()
            await app.stop()

    asyncio.run(scenario())
    assert sorted(credited) == sorted(p.charge_id for p in sim.star_payments())


# ---------------------------------------------------------------- control API and web page

def test_the_control_api_drives_a_payment_from_another_process(sim: TelegramSim) -> None:
    control = f"{sim.url}/__sim"
    sent = invoice(sim)
    assert requests.post(f"{control}/pre_checkout_timeout", json={"seconds": 3}, timeout=5).ok
    started = requests.post(f"{control}/pay", json={"user_id": USER,
                                                    "message_id": sent["message_id"]}, timeout=5)
    attempt = started.json()["attempt"]
    assert (attempt["outcome"], attempt["timeout_s"], attempt["total_amount"]) == ("pending", 3, 50)
    one = requests.get(f"{control}/payment_attempts/{attempt['query_id']}", timeout=5).json()
    assert one["attempt"]["outcome"] == "pending"
    assert ok(call(sim, "answerPreCheckoutQuery", pre_checkout_query_id=attempt["query_id"],
                   ok=True))
    ended = requests.post(f"{control}/wait_for_payment", json={"query_id": attempt["query_id"]},
                          timeout=10).json()["attempt"]
    assert ended["outcome"] == "paid"
    [payment] = requests.get(f"{control}/star_payments", timeout=5).json()["payments"]
    assert (payment["charge_id"], payment["amount"], payment["refunded"]) == (
        ended["charge_id"], 50, False)
    again = requests.post(f"{control}/redeliver_successful_payment",
                          json={"charge_id": ended["charge_id"]}, timeout=5).json()
    assert again["update_id"] > ended["payment_update_id"]
    listed = requests.get(f"{control}/payment_attempts", timeout=5).json()["attempts"]
    assert [a["outcome"] for a in listed] == ["paid"]
    for route, body, status in [
            ("pay", {"user_id": USER}, 404),                          # nothing left to pay
            ("pay", {"user_id": USER, "link": "https://t.me/$nope"}, 404),
            ("pay", {"user_id": USER, "message_id": "first"}, 400),
            ("pre_checkout_timeout", {"seconds": 0}, 400),
            ("redeliver_successful_payment", {"charge_id": "stxnope"}, 404),
            ("wait_for_payment", {"query_id": "nope"}, 404)]:
        answer = requests.post(f"{control}/{route}", json=body, timeout=5)
        assert answer.status_code == status, (route, body, answer.text)
    assert sim.pre_checkout_timeout_s == 3
    assert requests.post(f"{control}/reset", json={}, timeout=5).ok
    assert requests.get(f"{control}/star_payments", timeout=5).json() == {"payments": []}
    assert requests.get(f"{control}/payment_attempts", timeout=5).json() == {"attempts": []}


PAGE_SHOWS = """(() => {
  const pay = document.querySelector(".item.bot .keys button.pay");
  const invoice = document.querySelector(".item.bot .invoice");
  if (!pay || !invoice) return null;
  return {pay: pay.textContent, invoice: invoice.innerText};
})()"""

PAGE_OUTCOME = """(() => {
  const notice = document.getElementById("notice").textContent;
  const service = [...document.querySelectorAll(".item.service")].map((n) => n.textContent);
  return !notice || notice.startsWith("Paying") || !service.length ? null : {notice, service};
})()"""


def test_the_web_page_pays_an_invoice_and_shows_how_it_ended(sim: TelegramSim, browser: Chromium) -> None:
    page = browser.new_page()
    page.navigate(f"{sim.url}/")
    invoice(sim)
    shown = wait_until(lambda: page.evaluate(PAGE_SHOWS), timeout=10,
                       what="the invoice and its Pay button in the page", interval=0.05)
    assert shown == {"pay": "Pay ⭐50", "invoice": "100 credits\nTop up 100 credits\n⭐50"}
    seen = updates(sim)[-1]["update_id"]

    page.evaluate('document.querySelector(".keys button.pay").click()')
    [asked] = ok(call(sim, "getUpdates", offset=seen + 1, timeout=5))
    assert ok(call(sim, "answerPreCheckoutQuery", ok=True,
                   pre_checkout_query_id=asked["pre_checkout_query"]["id"]))
    outcome = wait_until(lambda: page.evaluate(PAGE_OUTCOME), timeout=10,
                         what="the payment's outcome in the page", interval=0.05)
    assert outcome == {"notice": "Paid ⭐50", "service": ["You paid ⭐50"]}

    invoice(sim)
    wait_until(lambda: page.evaluate(
        'document.querySelectorAll(".keys button.pay").length === 2'), timeout=10,
        what="the second invoice in the page", interval=0.05)
    page.evaluate('[...document.querySelectorAll(".keys button.pay")].at(-1).click()')
    [asked] = ok(call(sim, "getUpdates", offset=asked["update_id"] + 2, timeout=5))
    assert ok(call(sim, "answerPreCheckoutQuery", ok=False, error_message="Sold out",
                   pre_checkout_query_id=asked["pre_checkout_query"]["id"]))
    declined = wait_until(lambda: page.evaluate(
        'document.getElementById("notice").textContent.startsWith("Payment declined")'
        ' && document.getElementById("notice").textContent'), timeout=10,
        what="the declined payment in the page", interval=0.05)
    assert declined == "Payment declined: Sold out"
