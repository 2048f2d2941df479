"""Aspect ratios (`--ar W:H`) and each model's own field for them.

Models name the shape of their output differently: `aspect_ratio` ("16:9"), `image_size`
("16:9", or "landscape_16_9" and "square_hd"), `ratio`, `size`, or "portrait"/"landscape".
`aspect_of(spec)` finds the field and what ratio each of its values means; `pick` turns a
ratio the user typed into that field's value, or says why it cannot (the model has no such
setting, or offers other ratios). Pure: no I/O, no wording.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from config.catalogue import InputField, ModelSpec

# The fields that hold an output's shape, in the order they are looked for.
ASPECT_FIELDS = ("aspect_ratio", "image_size", "ratio", "size", "aspect")
_RATIO = re.compile(r"^\s*(\d{1,4})\s*[:x\u00d7/]\s*(\d{1,4})\s*$", re.IGNORECASE)
_NAMED = re.compile(r"^(portrait|landscape)_(\d{1,2})_(\d{1,2})$")
# Words some models use for a shape: square is 1:1; portrait and landscape alone (Sora) are 9:16 and 16:9.
_WORDS = {"square": (1, 1), "square_hd": (1, 1), "portrait": (9, 16), "landscape": (16, 9)}


@dataclass(frozen=True)
class Ratio:
    """A width:height ratio in lowest terms."""

    width: int
    height: int

    @classmethod
    def parse(cls, raw: str) -> Ratio | None:
        """"16:9", "16x9" or "16/9" as a Ratio; None for anything else (or a zero side)."""
        found = _RATIO.match(raw)
        if found is None:
            return None
        return cls.of(int(found.group(1)), int(found.group(2)))

    @classmethod
    def of(cls, width: int, height: int) -> Ratio | None:
        if width <= 0 or height <= 0:
            return None
        common = math.gcd(width, height)
        return cls(width // common, height // common)

    def __str__(self) -> str:
        return f"{self.width}:{self.height}"


@dataclass(frozen=True)
class AspectField:
    """A model's shape field and the ratio each of its values stands for (values such as
    "auto" that stand for none are left out)."""

    field: InputField
    values: tuple[tuple[Ratio, Any], ...]

    def ratios(self) -> list[str]:
        """The ratios offered, each once, in the field's order, spelled as people know them
        ("21:9", not 7:3)."""
        seen: dict[Ratio, str] = {}
        for ratio, value in self.values:
            seen.setdefault(ratio, spelled(value))
        return list(seen.values())

    def value_for(self, ratio: Ratio) -> Any | None:
        """The field's value for `ratio`: its default when that one means it, else the first."""
        matching = [value for r, value in self.values if r == ratio]
        if not matching:
            return None
        return self.field.default if self.field.default in matching else matching[0]


@dataclass(frozen=True)
class Picked:
    """`--ar` as the model's own setting."""

    name: str
    value: Any


@dataclass(frozen=True)
class NoAspect:
    """The model has no setting for its output's shape."""


@dataclass(frozen=True)
class NotARatio:
    """What was typed is not W:H."""


@dataclass(frozen=True)
class NotOffered:
    """A ratio the model does not make; `offered` are the ones it does."""

    offered: tuple[str, ...]


Pick = Picked | NoAspect | NotARatio | NotOffered


def ratio_of(value: Any) -> Ratio | None:
    """The ratio one value of a shape field stands for: "16:9", "1024x768", "landscape_16_9",
    "square_hd", "portrait"; None for "auto", "adaptive", "standard" and the like."""
    if not isinstance(value, str):
        return None
    raw = value.strip().lower()
    if raw in _WORDS:
        return Ratio(*_WORDS[raw])
    named = _NAMED.match(raw)
    if named is not None:
        long, short = int(named.group(2)), int(named.group(3))
        side = (min(long, short), max(long, short)) if named.group(1) == "portrait" else (
            max(long, short), min(long, short))
        return Ratio.of(*side)
    return Ratio.parse(raw)


def spelled(value: Any) -> str:
    """A shape value as W:H, unreduced: "21:9" stays 21:9, "landscape_4_3" is 4:3, "square" 1:1."""
    raw = str(value).strip().lower()
    named = _NAMED.match(raw)
    if named is not None:
        long, short = sorted((int(named.group(2)), int(named.group(3))), reverse=True)
        return f"{short}:{long}" if named.group(1) == "portrait" else f"{long}:{short}"
    found = _RATIO.match(raw)
    if found is not None:
        return f"{int(found.group(1))}:{int(found.group(2))}"
    return str(ratio_of(value) or value)


def aspect_of(spec: ModelSpec) -> AspectField | None:
    """The model's shape field (the first of ASPECT_FIELDS with at least one value that is a
    ratio), or None when it has none."""
    for name in ASPECT_FIELDS:
        f = spec.field(name)
        if f is None or not f.enum:
            continue
        values = tuple((r, v) for v in f.enum if (r := ratio_of(v)) is not None)
        if values:
            return AspectField(f, values)
    return None


def pick(spec: ModelSpec, raw: str) -> Pick:
    """`--ar raw` for `spec`: the field and value to send, or why there is none."""
    aspect = aspect_of(spec)
    if aspect is None:
        return NoAspect()
    ratio = Ratio.parse(raw)
    if ratio is None:
        return NotARatio()
    value = aspect.value_for(ratio)
    if value is None:
        return NotOffered(tuple(aspect.ratios()))
    return Picked(aspect.field.name, value)
