"""Finding offered models by what a user types: `--model` (an id or an unambiguous short name)
and `/models <words>` (names, providers and descriptions, in both languages).

Only models the operator offers (a price, or a free tier) are ever found. Pure over the
catalogue and the price file: no I/O, no wording.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from config.catalogue import Catalogue, ModelSpec
from config.pricing import Pricing
from config.texts import LANGS

CATEGORY_ORDER = ("image", "image_edit", "video", "audio", "tools")


@dataclass(frozen=True)
class Found:
    spec: ModelSpec


@dataclass(frozen=True)
class Ambiguous:
    """Several models answer to the name; their ids, to choose from."""

    ids: tuple[str, ...]


@dataclass(frozen=True)
class Unknown:
    """No offered model answers to the name."""


Resolved = Found | Ambiguous | Unknown


def offered(catalogue: Catalogue, pricing: Pricing) -> list[ModelSpec]:
    """Every offered model, by category (the menu's order), then as each category lists them."""
    ordered = [m for category in CATEGORY_ORDER for m in catalogue.in_category(category)]
    rest = [m for m in catalogue.offered() if m.category not in CATEGORY_ORDER]
    return [m for m in ordered + rest if pricing.offered(m)]


def slug(words: str) -> str:
    """"Nano Banana Pro" → "nano-banana-pro": how a short name is compared."""
    return re.sub(r"[^\w.]+", "-", words.strip().lower()).strip("-")


def resolve(catalogue: Catalogue, pricing: Pricing, name: str) -> Resolved:
    """The model `name` stands for: its id; else the one model whose id ends in "/name" or whose
    display name is `name` ("nano-banana" → google/nano-banana); else the one model whose id or
    name holds it as whole parts ("nano" is in nano-banana-pro, "x-2" is not in flux-2).
    Several at the same level: Ambiguous; none: Unknown."""
    models = offered(catalogue, pricing)
    wanted = slug(name)
    if not wanted:
        return Unknown()
    exact = [m for m in models if m.id.lower() == name.strip().lower()]
    if exact:
        return Found(exact[0])
    levels = (
        [m for m in models if m.id.lower().rsplit("/", 1)[-1] == wanted
         or any(slug(m.name(lang)) == wanted for lang in LANGS)],
        [m for m in models if _has_part(m.id.lower(), wanted) or any(_has_part(slug(m.name(lang)), wanted)
                                                                      for lang in LANGS)],
    )
    for candidates in levels:
        if len(candidates) == 1:
            return Found(candidates[0])
        if candidates:
            return Ambiguous(tuple(m.id for m in candidates))
    return Unknown()


def _has_part(words: str, wanted: str) -> bool:
    """`wanted` in `words` between separators ("/", "-") or the ends."""
    return re.search(rf"(?:^|[/-]){re.escape(wanted)}(?:$|[/-])", words) is not None


def search(catalogue: Catalogue, pricing: Pricing, words: str) -> list[ModelSpec]:
    """Offered models whose id, provider, names or descriptions (any language) hold every word."""
    terms = words.lower().split()
    return [m for m in offered(catalogue, pricing) if all(term in haystack(m) for term in terms)]


def haystack(spec: ModelSpec) -> str:
    """Everything a search looks at, in lower case: id, title (it starts with the provider),
    and the names and descriptions in every language."""
    parts = [spec.id, spec.title, *(spec.name(lang) for lang in LANGS), *(spec.description(lang) for lang in LANGS)]
    return "\n".join(parts).lower()
