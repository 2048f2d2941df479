"""What one generation costs one user now, and prices in words.

`charge_for` puts the operator's price (config.pricing) together with the user's free tier left
today: free (the free tier, or a price of 0, covers it), a price in minor units, or no price at
all (the model is not offered to paying users). The words for prices on the model list, the
model card and the confirmation are made here from config/texts. It reads at most one row count
(today's free generations of that model) and never writes.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from config.catalogue import ModelSpec
from config.money import format_credits
from config.pricing import Pricing, Quote
from config.texts import text
from storage import ledger
from storage.db import Database


@dataclass(frozen=True)
class Charge:
    """What starting one job now would cost: `quote` is the operator's price (None: no price),
    `free_left` the free generations of this model the user has left today, before this one."""

    quote: Quote | None
    free_per_day: int = 0
    free_left: int = 0

    @property
    def free(self) -> bool:
        """Nothing to pay: a free generation is left, or the price is 0."""
        return self.free_left > 0 or (self.quote is not None and self.quote.price == 0)

    @property
    def price(self) -> int | None:
        """Minor units the user would pay: 0 when free, None when it cannot be bought."""
        if self.free:
            return 0
        return self.quote.price if self.quote is not None else None

    def requoted(self, quote: Quote | None) -> Charge:
        """The same user and day, another choice of inputs."""
        return dataclasses.replace(self, quote=quote)


def charge_for(db: Database, pricing: Pricing, user_id: int, spec: ModelSpec, job_input: Mapping[str, Any]) -> Charge:
    """The charge for `job_input` on `spec` for this user, now (one count when the model has a
    free tier, no query otherwise)."""
    per_day = pricing.free_per_day(spec.id)
    used = ledger.free_used_today(db, user_id, spec.id)[spec.id] if per_day > 0 else 0
    return Charge(pricing.quote(spec, job_input), per_day, max(per_day - used, 0))


# --- words ------------------------------------------------------------------------------------
def amount(lang: str, minor: int) -> str:
    """"12.5 credits"."""
    return text(lang, "price_credits", price=format_credits(minor))


def list_label(lang: str, pricing: Pricing, spec: ModelSpec) -> str:
    """What the model list shows after a model's name: "free 3/day", "free" or "from 12 credits"."""
    per_day = pricing.free_per_day(spec.id)
    if per_day > 0:
        return text(lang, "price_free_per_day", n=per_day)
    lowest = pricing.from_price(spec)
    if lowest is None:
        return text(lang, "price_none")
    return text(lang, "price_free") if lowest == 0 else text(lang, "price_from", price=amount(lang, lowest))


def card_label(lang: str, pricing: Pricing, spec: ModelSpec) -> str:
    """The model card's price: the list's words, and what it costs once the free ones are used."""
    per_day, lowest = pricing.free_per_day(spec.id), pricing.from_price(spec)
    if per_day > 0 and lowest:
        return text(lang, "price_free_then", n=per_day, price=amount(lang, lowest))
    return list_label(lang, pricing, spec)


def free_note(lang: str, charge: Charge, after_this: bool = False) -> str:
    """"free: 2 of 3 left today" (after this job when `after_this`); "" without a free tier."""
    if charge.free_per_day <= 0 or charge.free_left <= 0:
        return ""
    left = charge.free_left - 1 if after_this else charge.free_left
    return text(lang, "free_left", left=left, n=charge.free_per_day)
