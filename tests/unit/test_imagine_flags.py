"""/imagine's flags against the real catalogue: `--ar` on each model's own shape field, and
`--model` by id or unambiguous short name (bot.aspect, bot.model_search); and the new buttons'
callback_data, built and parsed in one place."""
from __future__ import annotations

import pytest

from bot import aspect, model_search
from bot import callback_data as cd
from config.catalogue import ModelSpec, load_catalogue
from config.pricing import default_pricing

CATALOGUE = load_catalogue()
PRICING = default_pricing()


def spec(model_id: str) -> ModelSpec:
    found = CATALOGUE.get(model_id)
    assert found is not None
    return found


@pytest.mark.parametrize(("model", "typed", "expected"), [
    ("z-image", "16:9", aspect.Picked("aspect_ratio", "16:9")),
    ("z-image", "16x9", aspect.Picked("aspect_ratio", "16:9")),
    ("google/nano-banana", "16:9", aspect.Picked("image_size", "16:9")),
    ("google/nano-banana", "7:3", aspect.Picked("image_size", "21:9")),            # the same ratio
    ("bytedance/seedream-v4-text-to-image", "9:16", aspect.Picked("image_size", "portrait_16_9")),
    ("bytedance/seedream-v4-text-to-image", "1:1", aspect.Picked("image_size", "square_hd")),   # its default
    ("qwen/text-to-image", "4:3", aspect.Picked("image_size", "landscape_4_3")),
    ("sora-2-text-to-video", "9:16", aspect.Picked("aspect_ratio", "portrait")),
    ("wan/2-7-text-to-video", "1:1", aspect.Picked("ratio", "1:1")),
    ("sora-2-text-to-video", "1:1", aspect.NotOffered(("9:16", "16:9"))),
    ("google/nano-banana", "7:5", aspect.NotOffered(("1:1", "9:16", "16:9", "3:4", "4:3", "3:2", "2:3", "5:4", "4:5",
                                                     "21:9"))),
    ("z-image", "wide", aspect.NotARatio()),
    ("z-image", "0:1", aspect.NotARatio()),
    ("hailuo/02-text-to-video-pro", "16:9", aspect.NoAspect()),
])
def test_ar_is_set_on_the_models_own_field_or_refused_with_a_reason(model: str, typed: str, expected: object) -> None:
    assert aspect.pick(spec(model), typed) == expected


@pytest.mark.parametrize(("name", "expected"), [
    ("google/nano-banana", model_search.Found(spec("google/nano-banana"))),
    ("nano-banana", model_search.Found(spec("google/nano-banana"))),
    ("Nano-Banana", model_search.Found(spec("google/nano-banana"))),
    ("nano-banana-pro", model_search.Found(spec("nano-banana-pro"))),
    ("zzz", model_search.Unknown()),
    ("", model_search.Unknown()),
])
def test_model_by_id_or_unambiguous_short_name(name: str, expected: object) -> None:
    assert model_search.resolve(CATALOGUE, PRICING, name) == expected


def test_a_short_name_that_fits_several_models_lists_them() -> None:
    found = model_search.resolve(CATALOGUE, PRICING, "nano")
    assert isinstance(found, model_search.Ambiguous)
    assert {"google/nano-banana", "nano-banana-2", "nano-banana-pro"} <= set(found.ids)


def test_search_looks_at_names_providers_and_descriptions_in_both_languages() -> None:
    assert {m.id for m in model_search.search(CATALOGUE, PRICING, "google edit")} >= {"google/nano-banana-edit"}
    assert "google/nano-banana" not in {m.id for m in model_search.search(CATALOGUE, PRICING, "google edit")}
    assert model_search.search(CATALOGUE, PRICING, "qwzx") == []
    assert all(PRICING.offered(m) for m in model_search.search(CATALOGUE, PRICING, "video"))


@pytest.mark.parametrize("data", [
    cd.ModelList(0), cd.ModelList(3, "nano banana"), cd.ModelList(1, "a:b"), cd.UseExample("0123456789", 1),
    cd.ShowConfirm("0123456789"), cd.Menu("back"), cd.JobAction("again", 42),
])
def test_new_buttons_round_trip_through_callback_data(data: cd.Data) -> None:
    assert cd.parse(cd.build(data)) == data
