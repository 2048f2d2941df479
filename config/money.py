"""The bot's own credits, as integer minor units: the only way money is counted in kiebot.

A user pays in *credits*; one credit is `MINOR_PER_CREDIT` minor units, and every amount that is
stored, compared or added is an `int` of minor units (never a float). Decimal text ("12.5") is
for people and the command line only: `parse_credits` reads it exactly (refusing what does not
fit in minor units) and `format_credits` writes it. This is a leaf module.
"""
from __future__ import annotations

from decimal import ROUND_CEILING, Decimal, InvalidOperation

MINOR_PER_CREDIT = 100


class MoneyError(ValueError):
    """Text or a number that is not an amount of credits."""


def parse_credits(value: str | int | Decimal) -> int:
    """Credits (e.g. "12.5", 3, Decimal("0.25")) as minor units, exactly; MoneyError otherwise."""
    if isinstance(value, (bool, float)):
        raise MoneyError(f"{value!r}: write credits as a decimal string, not a float")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise MoneyError(f"{value!r} is not a number of credits") from None
    if not amount.is_finite():
        raise MoneyError(f"{value!r} is not a number of credits")
    minor = amount * MINOR_PER_CREDIT
    if minor != minor.to_integral_value():
        raise MoneyError(f"{value!r} has more decimals than credits have (1/{MINOR_PER_CREDIT})")
    return int(minor)


def credits_up(amount: Decimal) -> int:
    """A computed amount of credits (a price times a count, a markup) in minor units, rounded up:
    a price is never rounded in the user's favour below what it costs."""
    return int((amount * MINOR_PER_CREDIT).to_integral_value(rounding=ROUND_CEILING))


def to_decimal(minor: int) -> Decimal:
    """Minor units as a Decimal number of credits (for JSON and reports)."""
    return (Decimal(minor) / MINOR_PER_CREDIT).quantize(Decimal(1) / MINOR_PER_CREDIT)


def format_credits(minor: int) -> str:
    """Minor units as short text for people: 1250 → "12.5", 300 → "3", -5 → "-0.05"."""
    text = f"{to_decimal(minor):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
