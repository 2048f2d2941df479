"""The bot's pure money helpers, from tables: invoice payloads and the pre-checkout check,
referral codes, what a job costs a user now, buttons that carry a price, and movements in words."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from bot import callback_data as cd
from bot import payments, prices, referral
from bot.balance import movement_line
from config.pricing import Quote, StarsPackage, default_pricing
from storage.ledger import EntryKind, Movement

PRICING = default_pricing()
PACKAGE = PRICING.packages[0]


@pytest.mark.parametrize("package", PRICING.packages)
def test_every_shipped_package_round_trips_through_its_invoice_payload(package: StarsPackage) -> None:
    payload = payments.invoice_payload(package)
    assert len(payload.encode()) <= payments.PAYLOAD_MAX_BYTES
    assert payments.parse_payload(payload) == payments.Promise(package.id, package.credits)
    assert payments.checkout_problem(PRICING, "XTR", package.stars, payload) is None


def test_a_payload_that_would_not_fit_telegrams_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="128 bytes"):
        payments.invoice_payload(StarsPackage("x" * 130, 10, 1000))


@pytest.mark.parametrize("payload", ["", "stars", "stars:s50", "stars::100", "stars:s50:", "stars:s50:-5",
                                     "stars:s50:0", "stars:s50:1.5", "pack:s50:100", "stars:s50:100:extra"])
def test_payloads_we_did_not_make_do_not_parse(payload: str) -> None:
    assert payments.parse_payload(payload) is None


@pytest.mark.parametrize(("currency", "stars", "payload"), [
    ("XTR", PACKAGE.stars, f"stars:{PACKAGE.id}:{PACKAGE.credits + 1}"),      # more credits than sold
    ("XTR", PACKAGE.stars - 1, f"stars:{PACKAGE.id}:{PACKAGE.credits}"),      # fewer Stars than the price
    ("XTR", PACKAGE.stars, f"stars:nope:{PACKAGE.credits}"),                   # no such package
    ("USD", PACKAGE.stars, f"stars:{PACKAGE.id}:{PACKAGE.credits}"),           # not Stars
    ("XTR", PACKAGE.stars, "garbage"),
])
def test_a_checkout_that_does_not_match_a_package_in_force_is_refused(currency: str, stars: int, payload: str) -> None:
    assert payments.checkout_problem(PRICING, currency, stars, payload) == "checkout_changed"


@pytest.mark.parametrize("user_id", [1, 35, 36, 777000, 6101, 2 ** 40 + 7, 2 ** 63 - 1])
def test_a_referral_code_names_its_user(user_id: int) -> None:
    link = referral.link("kiebot_bot", user_id)
    assert link.startswith("https://t.me/kiebot_bot?start=ref_")
    assert referral.referrer_in([link.rsplit("=", 1)[1]]) == user_id


@pytest.mark.parametrize("args", [None, [], ["ref_"], ["ref_!"], ["hello"], ["ref_" + "z" * 14], ["ref_0"],
                                  ["REF_abc"]])
def test_anything_else_is_no_referral(args: list[str] | None) -> None:
    assert referral.referrer_in(args) is None


@pytest.mark.parametrize(("charge", "price", "free"), [
    (prices.Charge(Quote(800, Decimal(4)), free_per_day=3, free_left=2), 0, True),
    (prices.Charge(Quote(800, Decimal(4)), free_per_day=3, free_left=0), 800, False),
    (prices.Charge(Quote(800, Decimal(4))), 800, False),
    (prices.Charge(Quote(0, Decimal(0))), 0, True),
    (prices.Charge(None, free_per_day=3, free_left=1), 0, True),
    (prices.Charge(None, free_per_day=3, free_left=0), None, False),
    (prices.Charge(None), None, False),
])
def test_what_starting_a_job_costs_now(charge: prices.Charge, price: int | None, free: bool) -> None:
    assert (charge.price, charge.free) == (price, free)


@pytest.mark.parametrize("data", [cd.Generate("abc", 1250), cd.Generate("abc", 0), cd.Generate("abc"),
                                  cd.Choose("abc", 2, 1, 800), cd.Choose("abc", 2, 1), cd.TopUp()])
def test_buttons_carry_the_price_agreed_to(data: cd.Data) -> None:
    assert cd.parse(cd.build(data)) == data


@pytest.mark.parametrize("raw", ["go:abc:-1", "go:abc:1.5", "ch:abc:1:2:x", "go:abc:1:2"])
def test_a_button_with_a_price_we_did_not_write_is_foreign(raw: str) -> None:
    assert cd.parse(raw) is None


def move(kind: EntryKind, amount: int, job_id: int | None = None, model: str | None = None,
         reason: str | None = None) -> Movement:
    return Movement(1, kind, amount, job_id, model, None, reason, dt.datetime.now(dt.UTC))


@pytest.mark.parametrize(("movement", "line"), [
    (move(EntryKind.HOLD, -1200, 41, "m"), "\u221212 · job #41 Nano Banana · on hold"),
    (move(EntryKind.CAPTURE, -1200, 41, "m"), "✓ 12 paid · job #41 Nano Banana"),
    (move(EntryKind.RELEASE, 1200, 41, "m"), "+12 · job #41 Nano Banana · returned"),
    (move(EntryKind.PURCHASE, 10000), "+100 · Stars purchase"),
    (move(EntryKind.REFUND, -250), "\u22122.5 · Stars refund"),
    (move(EntryKind.GRANT, 500, reason="sorry"), "+5 · from the operator (sorry)"),
    (move(EntryKind.GRANT, -500), "\u22125 · taken back by the operator"),
    (move(EntryKind.WELCOME, 300), "+3 · welcome credit"),
    (move(EntryKind.REFERRAL, 500), "+5 · referral bonus"),
])
def test_movements_in_words(movement: Movement, line: str) -> None:
    assert movement_line("en", movement, lambda model: "Nano Banana") == line
