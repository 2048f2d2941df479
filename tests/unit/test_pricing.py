"""Prices: the catalogue's rules counted per unit, the operator's price file over them, and its checks.

Models here are small catalogue entries built for each test (through `ModelSpec.from_json`, as the
loader builds them), so that every case shows the rule it exercises; the last tests load the
shipped catalogue and price file.
"""
from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from config.catalogue import Catalogue, ModelSpec, PriceUnit, load_catalogue
from config.pricing import PRICING_PATH, Pricing, Quote, StarsPackage, default_pricing, load_pricing
from config.settings import ConfigError

SOURCE = {"source": "a rate card", "date": "2026-08-17"}
PROMPT = {"name": "prompt", "type": "string", "required": True}
SHIPPED_PACKAGES = [{"id": "s50", "stars": 50, "credits": "50"}]


def field(name: str, type_: str = "string", **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, "required": False, **extra}


def model(model_id: str, price: dict[str, Any] | None, *inputs: dict[str, Any], offered: bool = True) -> ModelSpec:
    return ModelSpec.from_json({"id": model_id, "kind": "image", "task": "text-to-image", "title": model_id,
                                "inputs": [PROMPT, *inputs], "price": None if price is None else {**price, **SOURCE},
                                "offered": offered})


def pricing_file(tmp_path: Path, catalogue: Catalogue, **content: Any) -> Pricing:
    path = tmp_path / "pricing.json"
    path.write_text(json.dumps({"markup": "2", "stars_packages": SHIPPED_PACKAGES, **content}))
    return load_pricing(catalogue, path)


def problems(tmp_path: Path, catalogue: Catalogue, text: str) -> list[str]:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_pricing(catalogue, path)
    return caught.value.problems


# ----- the rule: one unit kind at a time ----------------------------------------------------------

def test_a_task_price_is_charged_once_whatever_the_input() -> None:
    spec = model("m", {"credits": "4", "unit": "task"}, field("n", "integer", default=3))
    assert spec.price is not None and spec.price.unit is PriceUnit.TASK
    assert spec.price.kie_credits({"prompt": "a", "n": 9}) == Decimal(4)


@pytest.mark.parametrize(("given", "units"), [
    ({"num_images": "3"}, 3), ({"num_images": 2}, 2), ({}, 1), ({"num_images": None}, 1),
], ids=["numeric string", "int", "absent", "none"])
def test_an_image_price_counts_the_count_field_or_one(given: dict[str, Any], units: int) -> None:
    spec = model("m", {"credits": "2.5", "unit": "image", "count_field": "num_images"},
                 field("num_images", enum=["1", "2", "3", "4"]))
    assert spec.price is not None
    assert spec.price.kie_credits({"prompt": "a", **given}) == Decimal("2.5") * units


def test_an_unset_image_count_with_a_default_counts_the_default_kie_would_make() -> None:
    spec = model("m", {"credits": "4.8", "unit": "image", "count_field": "n"}, field("n", "integer", default=4, min=1))
    assert spec.price is not None
    assert spec.price.kie_credits({}) == Decimal("19.2")
    assert spec.price.lowest_units() == 1


@pytest.mark.parametrize(("duration", "default", "seconds"), [
    ("10", None, 10), (8, None, 8), (None, "6", 6), (None, None, 4),
], ids=["numeric string", "int", "unset: the default", "unset, no default: the smallest choice"])
def test_a_per_second_price_counts_the_duration(duration: Any, default: Any, seconds: int) -> None:
    spec = model("m", {"credits": "4.5", "unit": "second"}, field("duration", enum=["6", "10", "4"], default=default))
    given = {} if duration is None else {"duration": duration}
    assert spec.price is not None
    assert spec.price.kie_credits(given) == Decimal("4.5") * seconds


def test_a_per_second_price_without_default_or_choices_counts_the_minimum() -> None:
    spec = model("m", {"credits": "3", "unit": "second", "count_field": "extend"}, field("extend", "number", min=6, max=30))
    assert spec.price is not None
    assert spec.price.kie_credits({}) == Decimal(18)
    assert spec.price.kie_credits({"extend": 7.5}) == Decimal("22.5")


@pytest.mark.parametrize(("length", "units"), [(0, 1), (1, 1), (1000, 1), (1001, 2), (5000, 5)])
def test_a_per_1000_characters_price_counts_started_thousands_at_least_one(length: int, units: int) -> None:
    spec = model("m", {"credits": "6", "unit": "1k_chars"}, field("text", required=True))
    assert spec.price is not None
    assert spec.price.count_field is not None and spec.price.count_field.name == "text"  # "text" before "prompt"
    assert spec.price.kie_credits({"text": "x" * length}) == Decimal(6 * units)


def test_a_per_1000_characters_price_counts_the_prompt_when_there_is_no_text() -> None:
    spec = model("m", {"credits": "12", "unit": "1k_chars"})
    assert spec.price is not None
    assert spec.price.kie_credits({"prompt": "x" * 2500}) == Decimal(36)


def test_by_field_picks_the_rate_of_the_choice_else_its_default_else_the_dearest() -> None:
    resolution = field("resolution", enum=["1K", "2K", "4K"], default="1K")
    spec = model("m", {"credits": "8", "unit": "image", "by_field": "resolution",
                       "by_value": {"1K": "8", "2K": "12", "4K": "18"}}, resolution)
    assert spec.price is not None
    assert [spec.price.kie_credits({"resolution": r}) for r in ("1K", "2K", "4K")] == [8, 12, 18]
    assert spec.price.kie_credits({}) == 8
    assert spec.price.kie_credits({"resolution": "8K"}) == 18  # not a choice: never under the dearest
    no_default = model("n", {"credits": "18", "unit": "image", "by_field": "resolution",
                             "by_value": {"1K": "8", "2K": "12", "4K": "18"}}, {**resolution, "default": None})
    assert no_default.price is not None and no_default.price.kie_credits({}) == 18


def test_by_field_can_be_a_yes_no_field_and_multiplies_with_the_seconds() -> None:
    spec = model("m", {"credits": "22", "unit": "second", "by_field": "sound", "by_value": {"false": "11.2", "true": "22"}},
                 field("sound", "boolean"), field("duration", enum=["5", "10"], default="5"))
    assert spec.price is not None
    assert spec.price.kie_credits({"sound": False, "duration": "10"}) == Decimal(112)
    assert spec.price.kie_credits({"sound": True}) == Decimal(110)
    assert spec.price.lowest_rate() * spec.price.lowest_units() == Decimal(56)


# ----- the price file over the rules ----------------------------------------------------------------

Z = model("z-image", {"credits": "0.8", "unit": "image"})
KLING = model("kling", {"credits": "22", "unit": "second", "by_field": "sound", "by_value": {"false": "11.2", "true": "22"}},
              field("sound", "boolean"), field("duration", enum=["5", "10"], default="5"))
ODD = model("odd", {"credits": "0.333", "unit": "task"})
NO_PRICE = model("no-price", None)
HIDDEN = model("hidden", {"credits": "1", "unit": "task"}, offered=False)
CATALOGUE = Catalogue([Z, KLING, ODD, NO_PRICE, HIDDEN])


def test_the_price_is_kie_credits_times_the_markup_in_minor_units_rounded_up(tmp_path: Path) -> None:
    pricing = pricing_file(tmp_path, CATALOGUE, markup="1.5")
    assert pricing.quote(Z, {"prompt": "a"}) == Quote(price=120, kie_credits=Decimal("0.8"))
    assert pricing.quote(ODD, {}) == Quote(price=50, kie_credits=Decimal("0.333"))  # 0.4995 credits -> 0.50
    assert pricing.quote(KLING, {"sound": False, "duration": "10"}) == Quote(price=16800, kie_credits=Decimal(112))


def test_the_from_price_is_the_cheapest_choice(tmp_path: Path) -> None:
    pricing = pricing_file(tmp_path, CATALOGUE)
    assert pricing.from_price(KLING) == 11200        # 11.2 a second x 5 s x 2
    assert pricing.from_price(Z) == 160
    assert pricing.from_price(NO_PRICE) is None


def test_a_credits_override_replaces_the_catalogues_kie_price_and_takes_the_markup(tmp_path: Path) -> None:
    pricing = pricing_file(tmp_path, CATALOGUE, models={"kling": {"credits": "10"}, "no-price": {"credits": "2"}})
    assert pricing.quote(KLING, {"sound": True, "duration": "10"}) == Quote(price=20000, kie_credits=Decimal(100))
    assert pricing.quote(NO_PRICE, {}) == Quote(price=400, kie_credits=Decimal(2))
    assert pricing.source(KLING) == "price file"
    assert pricing.offered(NO_PRICE) and pricing.unit(NO_PRICE) is PriceUnit.TASK


def test_a_price_override_is_bot_credits_per_unit_without_markup(tmp_path: Path) -> None:
    pricing = pricing_file(tmp_path, CATALOGUE, markup="3", models={"kling": {"price": "1.005"}, "no-price": {"price": "1"}})
    quote = pricing.quote(KLING, {"sound": True, "duration": "10"})
    assert quote == Quote(price=1005, kie_credits=Decimal(220))   # 10.05 credits; KIE still charges 220
    assert pricing.from_price(KLING) == 503                      # 5 s x 1.005 = 5.025 -> 5.03
    assert pricing.quote(NO_PRICE, {}) == Quote(price=100, kie_credits=Decimal(0))


def test_offered_false_switches_a_model_off_for_everyone(tmp_path: Path) -> None:
    pricing = pricing_file(tmp_path, CATALOGUE, models={"z-image": {"offered": False}}, free_tier={"z-image": 3})
    assert not pricing.offered(Z)
    assert pricing.quote(Z, {"prompt": "a"}) is None and pricing.from_price(Z) is None
    assert pricing.not_offered_reason(Z) == "switched off in the price file"


def test_a_model_without_a_price_is_not_offered_to_paying_users(tmp_path: Path) -> None:
    pricing = pricing_file(tmp_path, CATALOGUE)
    assert not pricing.offered(NO_PRICE) and pricing.quote(NO_PRICE, {}) is None
    assert pricing.not_offered_reason(NO_PRICE) == "no price" and pricing.source(NO_PRICE) == "no price"
    assert not pricing.offered(HIDDEN) and pricing.quote(HIDDEN, {}) is None
    assert pricing.source(Z) == "catalogue a rate card 2026-08-17"


def test_the_free_tier_counts_per_model_and_a_free_tier_alone_offers_a_model_free_only(tmp_path: Path) -> None:
    pricing = pricing_file(tmp_path, CATALOGUE, free_tier={"z-image": 3, "no-price": 2, "hidden": 1})
    assert (pricing.free_per_day("z-image"), pricing.free_per_day("kling"), pricing.free_per_day("nope")) == (3, 0, 0)
    assert pricing.offered(NO_PRICE) and pricing.quote(NO_PRICE, {}) is None  # free only
    assert len(pricing.notes) == 2
    assert any("free_tier.no-price" in n and "free only" in n for n in pricing.notes)
    assert any("free_tier.hidden" in n and "not offered" in n for n in pricing.notes)


def test_packages_bonuses_and_defaults_of_the_optional_keys(tmp_path: Path) -> None:
    packages = [{"id": "s50", "stars": 50, "credits": "50"}, {"id": "big_1", "stars": 500, "credits": "550.5"}]
    pricing = pricing_file(tmp_path, CATALOGUE, stars_packages=packages, welcome_credit="2.5",
                           referral_bonus={"referrer": "5", "referred": "1"})
    assert pricing.packages == (StarsPackage("s50", 50, 5000), StarsPackage("big_1", 500, 55050))
    assert pricing.package("big_1") == StarsPackage("big_1", 500, 55050) and pricing.package("s5") is None
    assert (pricing.welcome_credit, pricing.referrer_bonus, pricing.referred_bonus) == (250, 500, 100)
    bare = pricing_file(tmp_path, CATALOGUE)
    assert (bare.welcome_credit, bare.referrer_bonus, bare.referred_bonus, dict(bare.free_tier)) == (0, 0, 0, {})


# ----- the checks -------------------------------------------------------------------------------------

def test_a_bad_price_file_reports_every_problem_at_once_naming_the_file_and_the_key(tmp_path: Path) -> None:
    bad = {
        "markup": "0", "colour": "red",
        "models": {"nope": {"price": "1"}, "z-image": {"credits": "x", "price": "1", "size": 2},
                   "kling": {"offered": "no"}, "odd": {"credits": "-1"}},
        "stars_packages": [{"id": "S 1", "stars": 0, "credits": "-1"}, {"id": "a", "stars": 1.5, "credits": "1.001"},
                           {"id": "a", "stars": 2, "credits": "2", "bonus": 1}],
        "free_tier": {"missing": 1, "z-image": -1, "kling": "3"},
        "welcome_credit": "abc", "referral_bonus": {"referrer": "-5", "x": 1},
    }
    found = problems(tmp_path, CATALOGUE, json.dumps(bad))
    expected_keys = [
        "colour", "markup", "models.nope", "models.z-image.size", "models.z-image", "models.z-image.credits",
        "models.kling.offered", "models.odd.credits", "stars_packages[0].id", "stars_packages[0].stars",
        "stars_packages[0].credits", "stars_packages[1].stars", "stars_packages[1].credits",
        "stars_packages[2].bonus", "stars_packages[2].id", "free_tier.missing", "free_tier.z-image",
        "free_tier.kling", "welcome_credit", "referral_bonus.x", "referral_bonus.referrer",
    ]
    assert [line.split(": ")[1] for line in found] == expected_keys
    assert all(line.startswith(f"{tmp_path / 'bad.json'}: ") for line in found)
    assert any("greater than 0" in line for line in found if ": markup:" in line)
    assert any("used by an earlier package" in line for line in found)


@pytest.mark.parametrize(("text", "says"), [
    ("{not json", "is not JSON"),
    ("[1, 2]", "must be a JSON object"),
    ("{}", "markup: must be a decimal number"),
    ('{"markup": 2.5, "stars_packages": []}', "markup: must be a decimal number written as a string"),
    ('{"markup": "2", "stars_packages": []}', "stars_packages: must be a list of 1 to 10"),
    ('{"markup": "2", "stars_packages": ' + json.dumps(SHIPPED_PACKAGES * 11) + "}", "stars_packages: must be a list of 1 to 10"),
    ('{"markup": "2", "stars_packages": [{"id": "a", "stars": 1, "credits": "1"}], "models": []}', "models: must be an object"),
    ('{"markup": "2", "stars_packages": [{"id": "a", "stars": 1, "credits": "1"}], "free_tier": [1]}', "free_tier: must be an object"),
    ('{"markup": "2", "stars_packages": [{"id": "a", "stars": 1, "credits": "1"}], "referral_bonus": "5"}', "referral_bonus: must be an object"),
    ('{"markup": "2", "stars_packages": [{"id": "a", "stars": 1, "credits": "1"}], "models": {"kling": {}}}', "models.kling: must be an object with"),
], ids=["not json", "not an object", "no markup", "float markup", "no packages", "eleven packages", "models list",
        "free tier list", "referral text", "empty override"])
def test_each_kind_of_bad_file_is_refused_with_a_line_saying_what_is_wrong(tmp_path: Path, text: str, says: str) -> None:
    assert any(says in line for line in problems(tmp_path, CATALOGUE, text))


def test_a_missing_price_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_pricing(CATALOGUE, tmp_path / "absent.json")


# ----- the shipped files ---------------------------------------------------------------------------------

def test_the_shipped_price_file_loads_against_the_shipped_catalogue_with_its_documented_values() -> None:
    pricing = default_pricing()
    assert pricing.path == PRICING_PATH and pricing.notes == ()
    assert pricing.markup == 2
    assert [(p.id, p.stars) for p in pricing.packages] == [("s50", 50), ("s100", 100), ("s250", 250), ("s500", 500)]
    assert all(p.credits >= p.stars * 100 for p in pricing.packages)  # never less than a credit a Star
    assert (pricing.welcome_credit, pricing.referrer_bonus, pricing.referred_bonus) == (0, 500, 500)
    z_image = load_catalogue().get("z-image")
    assert z_image is not None and pricing.free_per_day("z-image") == 3 and pricing.offered(z_image)
    assert pricing.quote(z_image, {"prompt": "a fox", "aspect_ratio": "1:1"}) == Quote(price=160, kie_credits=Decimal("0.8"))


def test_at_least_100_models_are_offered_with_a_price_each_from_a_dated_source() -> None:
    pricing, catalogue = default_pricing(), load_catalogue()
    priced = [m for m in catalogue if pricing.offered(m) and pricing.quote(m, {}) is not None]
    assert len(priced) >= 100
    for spec in priced:
        assert spec.price is not None, spec.id
        assert pricing.source(spec) == f"catalogue {spec.price.source} {spec.price.date.isoformat()}"
        assert spec.price.source.strip() and spec.price.date.year >= 2025
        from_price = pricing.from_price(spec)
        assert from_price is not None and from_price > 0, spec.id


def test_every_offered_model_quotes_at_least_its_from_price_for_its_defaults() -> None:
    pricing, catalogue = default_pricing(), load_catalogue()
    for spec in catalogue:
        quote, from_price = pricing.quote(spec, spec.with_defaults({})), pricing.from_price(spec)
        if quote is None:
            continue
        assert from_price is not None and quote.price >= from_price, spec.id
        assert quote.price == math.ceil(quote.kie_credits * 2 * 100), spec.id  # kie credits x markup 2, up
