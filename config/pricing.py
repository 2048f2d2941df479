"""The operator's price file: what a user pays, in the bot's own credits, and for what.

Owns the file's format and its checks, and turns a model's catalogue price rule plus the user's
choices into a `Quote`: the price (integer minor units, rounded up, never below the cost) and what
KIE should charge (for the drift report). Never stores anything and never touches the ledger; a
bad file is one `ConfigError` with a line per problem, each naming the file and the key.

The shipped file (config/pricing.json; KIEBOT_PRICING names another) sets: markup 2 (two bot
credits per KIE credit); Stars packages s50/s100/s250/s500 (one credit a Star, about 4 % and 10 %
more on the two larger ones); a free tier of 3 Z-Image generations per user per UTC day, so a new
user can /imagine at once; no welcome credit; a referral bonus of 5 credits to each side.
"""
from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from config.catalogue import Catalogue, ModelSpec, PriceRule, PriceUnit, load_catalogue
from config.money import MoneyError, credits_up, parse_credits
from config.settings import ConfigError

PRICING_PATH = Path(__file__).with_name("pricing.json")
TOP_KEYS = ("markup", "models", "stars_packages", "free_tier", "welcome_credit", "referral_bonus")
OVERRIDE_KEYS = ("credits", "price", "offered")
PACKAGE_KEYS = ("id", "stars", "credits")
REFERRAL_KEYS = ("referrer", "referred")
PACKAGE_ID = re.compile(r"[a-z0-9_]{1,32}")
MAX_PACKAGES = 10
FROM_PRICE_FILE = "price file"
NO_PRICE = "no price"
SWITCHED_OFF = "switched off in the price file"


@dataclass(frozen=True)
class StarsPackage:
    """One Telegram Stars invoice the bot offers: `stars` buy `credits` (minor units)."""

    id: str
    stars: int
    credits: int


@dataclass(frozen=True)
class Quote:
    """The price of one generation: what the user pays and what KIE should charge for it."""

    price: int              # minor units the user pays (whether it is free today is decided elsewhere)
    kie_credits: Decimal    # what KIE should charge; 0 when only the price file prices the model


@dataclass(frozen=True)
class ModelOverride:
    """A model's line in the price file: KIE `credits` per unit replacing the catalogue's, or a
    `price` in bot credits per unit (no markup), and/or `offered` false to switch it off."""

    credits: Decimal | None = None
    price: Decimal | None = None
    offered: bool | None = None

    @property
    def prices(self) -> bool:
        return self.credits is not None or self.price is not None


@dataclass(frozen=True)
class Pricing:
    """The price file in force: markup, packages, bonuses, and the price of any model and input."""

    markup: Decimal
    packages: tuple[StarsPackage, ...]
    welcome_credit: int
    referrer_bonus: int
    referred_bonus: int
    overrides: Mapping[str, ModelOverride] = field(default_factory=dict)
    free_tier: Mapping[str, int] = field(default_factory=dict)
    path: Path = PRICING_PATH
    notes: tuple[str, ...] = ()     # things worth an operator's look that are not errors

    def package(self, package_id: str) -> StarsPackage | None:
        """The package with this id, or None."""
        return next((p for p in self.packages if p.id == package_id), None)

    def free_per_day(self, model_id: str) -> int:
        """Free generations of the model per user per UTC day; 0 when it is not in the free tier."""
        return self.free_tier.get(model_id, 0)

    def quote(self, spec: ModelSpec, given: Mapping[str, Any]) -> Quote | None:
        """The price of `given` on `spec`; None when the model is not offered to paying users
        (switched off, or no price in the catalogue nor in the price file)."""
        return self._priced(spec, lambda rule: (rule.rate(given), rule.units(given)))

    def from_price(self, spec: ModelSpec) -> int | None:
        """The lowest price over the model's choices (the "from N" of the model list), or None."""
        quote = self._priced(spec, lambda rule: (rule.lowest_rate(), rule.lowest_units()))
        return quote.price if quote is not None else None

    def offered(self, spec: ModelSpec) -> bool:
        """Whether users see the model: offered by the catalogue, not switched off here, and
        priced (or free: a model with a free tier and no price is offered as free only)."""
        if not self._switched_on(spec):
            return False
        return self._has_price(spec) or self.free_per_day(spec.id) > 0

    def not_offered_reason(self, spec: ModelSpec) -> str | None:
        """Why users do not see the model, or None when they do."""
        override = self.overrides.get(spec.id)
        if self.offered(spec):
            return None
        if not spec.offered:
            return spec.not_offered_reason or "not offered by the catalogue"
        if override is not None and override.offered is False:
            return SWITCHED_OFF
        return NO_PRICE

    def source(self, spec: ModelSpec) -> str:
        """Where the model's price comes from: "catalogue <source> <date>", "price file" or "no price"."""
        override = self.overrides.get(spec.id)
        if override is not None and override.prices:
            return FROM_PRICE_FILE
        if spec.price is not None:
            return f"catalogue {spec.price.source} {spec.price.date.isoformat()}"
        return NO_PRICE

    def unit(self, spec: ModelSpec) -> PriceUnit | None:
        """What the price counts (a price-file-only price is per task), or None without a price."""
        if spec.price is not None:
            return spec.price.unit
        return PriceUnit.TASK if self._has_price(spec) else None

    def _switched_on(self, spec: ModelSpec) -> bool:
        override = self.overrides.get(spec.id)
        return spec.offered and not (override is not None and override.offered is False)

    def _has_price(self, spec: ModelSpec) -> bool:
        override = self.overrides.get(spec.id)
        return spec.price is not None or (override is not None and override.prices)

    def _priced(self, spec: ModelSpec, pick: Callable[[PriceRule], tuple[Decimal, Decimal]]) -> Quote | None:
        """The quote for the (rate, units) `pick` takes from the catalogue rule, with the price
        file's override applied."""
        if not self._switched_on(spec) or not self._has_price(spec):
            return None
        rule, override = spec.price, self.overrides.get(spec.id) or ModelOverride()
        rate, units = pick(rule) if rule is not None else (Decimal(0), Decimal(1))
        kie_credits = (override.credits if override.credits is not None else rate) * units
        if override.price is not None:
            return Quote(price=credits_up(override.price * units), kie_credits=kie_credits)
        return Quote(price=credits_up(kie_credits * self.markup), kie_credits=kie_credits)


def load_pricing(catalogue: Catalogue, path: Path | None = None) -> Pricing:
    """The price file at `path` (the shipped one when None), checked against `catalogue`;
    ConfigError with one line per problem, each naming the file and the key."""
    path = PRICING_PATH if path is None else path
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read: {exc.strerror or exc}"]) from None
    except ValueError as exc:
        raise ConfigError([f"{path}: is not JSON: {exc}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: must be a JSON object with the keys {', '.join(TOP_KEYS)}"])
    check = _Checker(path)
    for key in raw:
        if key not in TOP_KEYS:
            check.problem(key, f"is not a key of the price file (known: {', '.join(TOP_KEYS)})")
    markup = check.decimal("markup", raw.get("markup"), positive=True)
    overrides = _overrides(check, catalogue, raw.get("models", {}))
    packages = _packages(check, raw.get("stars_packages"))
    free_tier = _free_tier(check, catalogue, overrides, raw.get("free_tier", {}))
    welcome = check.credits("welcome_credit", raw.get("welcome_credit", "0"))
    referral = raw.get("referral_bonus", {"referrer": "0", "referred": "0"})
    if not isinstance(referral, dict):
        check.problem("referral_bonus", 'must be an object {"referrer": "5", "referred": "5"}')
        referral = {}
    for key in referral:
        if key not in REFERRAL_KEYS:
            check.problem(f"referral_bonus.{key}", "is not a key (known: referrer, referred)")
    referrer = check.credits("referral_bonus.referrer", referral.get("referrer", "0"))
    referred = check.credits("referral_bonus.referred", referral.get("referred", "0"))
    if check.problems:
        raise ConfigError(check.problems)
    assert markup is not None
    return Pricing(markup=markup, packages=packages, welcome_credit=welcome or 0, referrer_bonus=referrer or 0,
                   referred_bonus=referred or 0, overrides=overrides, free_tier=free_tier, path=path,
                   notes=tuple(check.notes))


@functools.cache
def default_pricing() -> Pricing:
    """The shipped price file against the shipped catalogue, loaded once."""
    return load_pricing(load_catalogue())


class _Checker:
    """Collects problems and notes, each line naming the file and the key."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[str] = []
        self.notes: list[str] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.path}: {key}: {message}")

    def note(self, key: str, message: str) -> None:
        self.notes.append(f"{self.path}: {key}: {message}")

    def decimal(self, key: str, value: Any, *, positive: bool = False) -> Decimal | None:
        """A decimal string (or whole number) >= 0, or > 0 when `positive`."""
        amount = None
        if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
            try:
                amount = Decimal(str(value).strip())
            except InvalidOperation:
                amount = None
        if amount is None or not amount.is_finite():
            self.problem(key, f"must be a decimal number written as a string, got {value!r}")
            return None
        if amount < 0 or (positive and amount == 0):
            self.problem(key, f"must be {'greater than 0' if positive else 'at least 0'}, got {value!r}")
            return None
        return amount

    def credits(self, key: str, value: Any, *, positive: bool = False) -> int | None:
        """An amount of bot credits (at most two decimals) as minor units."""
        try:
            minor = parse_credits(value)
        except MoneyError as exc:
            self.problem(key, str(exc))
            return None
        if minor < 0 or (positive and minor == 0):
            self.problem(key, f"must be {'greater than 0' if positive else 'at least 0'}, got {value!r}")
            return None
        return minor


def _overrides(check: _Checker, catalogue: Catalogue, raw: Any) -> dict[str, ModelOverride]:
    if not isinstance(raw, dict):
        check.problem("models", 'must be an object of model id -> {"credits" | "price" | "offered"}')
        return {}
    overrides = {}
    for model_id, line in raw.items():
        key = f"models.{model_id}"
        if catalogue.get(model_id) is None:
            check.problem(key, "is not a model of the catalogue")
            continue
        if not isinstance(line, dict) or not line:
            check.problem(key, 'must be an object with "credits", "price" or "offered"')
            continue
        for name in line:
            if name not in OVERRIDE_KEYS:
                check.problem(f"{key}.{name}", f"is not a key (known: {', '.join(OVERRIDE_KEYS)})")
        if "credits" in line and "price" in line:
            check.problem(key, 'give "credits" (KIE credits, with markup) or "price" (bot credits), not both')
        kie_credits = check.decimal(f"{key}.credits", line["credits"]) if "credits" in line else None
        price = check.decimal(f"{key}.price", line["price"]) if "price" in line else None
        offered = line.get("offered")
        if offered is not None and not isinstance(offered, bool):
            check.problem(f"{key}.offered", f"must be true or false, got {offered!r}")
            offered = None
        overrides[model_id] = ModelOverride(credits=kie_credits, price=price, offered=offered)
    return overrides


def _packages(check: _Checker, raw: Any) -> tuple[StarsPackage, ...]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_PACKAGES:
        check.problem("stars_packages", f"must be a list of 1 to {MAX_PACKAGES} packages "
                                        '{"id": "s50", "stars": 50, "credits": "50"}')
        return ()
    packages, seen = [], set()
    for i, line in enumerate(raw):
        key = f"stars_packages[{i}]"
        if not isinstance(line, dict):
            check.problem(key, 'must be an object {"id", "stars", "credits"}')
            continue
        for name in line:
            if name not in PACKAGE_KEYS:
                check.problem(f"{key}.{name}", f"is not a key (known: {', '.join(PACKAGE_KEYS)})")
        package_id, stars = line.get("id"), line.get("stars")
        if not isinstance(package_id, str) or not PACKAGE_ID.fullmatch(package_id):
            check.problem(f"{key}.id", f"must be 1-32 characters of a-z, 0-9 and _, got {package_id!r}")
        elif package_id in seen:
            check.problem(f"{key}.id", f"{package_id!r} is used by an earlier package")
        seen.add(package_id)
        if isinstance(stars, bool) or not isinstance(stars, int) or stars <= 0:
            check.problem(f"{key}.stars", f"must be a whole number of Stars greater than 0, got {stars!r}")
        bought = check.credits(f"{key}.credits", line.get("credits"), positive=True)
        if isinstance(package_id, str) and isinstance(stars, int) and bought is not None:
            packages.append(StarsPackage(id=package_id, stars=stars, credits=bought))
    return tuple(packages)


def _free_tier(check: _Checker, catalogue: Catalogue, overrides: Mapping[str, ModelOverride],
               raw: Any) -> dict[str, int]:
    if not isinstance(raw, dict):
        check.problem("free_tier", "must be an object of model id -> generations per day")
        return {}
    free = {}
    for model_id, per_day in raw.items():
        key = f"free_tier.{model_id}"
        spec = catalogue.get(model_id)
        if spec is None:
            check.problem(key, "is not a model of the catalogue")
            continue
        if isinstance(per_day, bool) or not isinstance(per_day, int) or per_day < 0:
            check.problem(key, f"must be a whole number of generations per day, at least 0, got {per_day!r}")
            continue
        override = overrides.get(model_id)
        if not spec.offered:
            check.note(key, f"{model_id} is not offered by the catalogue, so its free tier has no effect")
        elif spec.price is None and not (override is not None and override.prices) and per_day > 0:
            check.note(key, f"{model_id} has no price: it is offered free only, {per_day} a day")
        free[model_id] = per_day
    return free
