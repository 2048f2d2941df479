"""The model catalogue: every KIE market model, its input schema, result media and price.

Loaded once from `config/models.json`. Both the bot (to validate what a user typed) and the KIE
simulator (to answer 422 like KIE) validate through `ModelSpec.validate`, so the two can never
disagree. Adding a model is a change to the JSON only; nothing here is model-specific.
"""
from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

CATALOGUE_PATH = Path(__file__).with_name("models.json")

# How long a job of each kind may take at KIE before we give up and tell the user.
DEADLINE_S_BY_KIND = {"image": 15 * 60, "video": 60 * 60, "audio": 30 * 60, "text": 15 * 60}


@dataclass(frozen=True)
class InputField:
    """One field of a model's `input` object, with the limits KIE enforces."""

    name: str
    type: str
    required: bool
    enum: tuple[Any, ...] | None = None
    default: Any = None
    min: float | None = None
    max: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    min_items: int | None = None
    max_items: int | None = None
    media: dict[str, Any] | None = None
    description: str = ""

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> InputField:
        enum = raw.get("enum")
        return cls(
            name=raw["name"], type=raw["type"], required=bool(raw.get("required")),
            enum=tuple(enum) if enum else None, default=raw.get("default"),
            min=raw.get("min"), max=raw.get("max"),
            min_length=raw.get("min_length"), max_length=raw.get("max_length"),
            min_items=raw.get("min_items"), max_items=raw.get("max_items"),
            media=raw.get("media"), description=raw.get("description") or "",
        )

    def check(self, value: Any) -> str | None:
        """Return a plain-language reason why `value` is not acceptable, or None."""
        problem = _type_problem(self.type, value)
        if problem:
            return f"{self.name} {problem}"
        if self.enum is not None and value not in self.enum:
            allowed = ", ".join(str(v) for v in self.enum)
            return f"{self.name} must be one of: {allowed}"
        if isinstance(value, str):
            if self.max_length is not None and len(value) > self.max_length:
                return f"{self.name} is too long: {len(value)} characters, at most {self.max_length}"
            if self.min_length is not None and len(value) < self.min_length:
                return f"{self.name} is too short: at least {self.min_length} characters"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if self.min is not None and value < self.min:
                return f"{self.name} must be at least {self.min}"
            if self.max is not None and value > self.max:
                return f"{self.name} must be at most {self.max}"
        if isinstance(value, list):
            if self.min_items is not None and len(value) < self.min_items:
                return f"{self.name} needs at least {self.min_items} items"
            if self.max_items is not None and len(value) > self.max_items:
                return f"{self.name} takes at most {self.max_items} items"
        return None


def _type_problem(kind: str, value: Any) -> str | None:
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    checks = {
        "string": isinstance(value, str),
        "url": isinstance(value, str) and value.startswith(("http://", "https://")),
        "integer": is_number and float(value).is_integer(),
        "number": is_number and math.isfinite(float(value)),
        "boolean": isinstance(value, bool),
        "array-of-url": isinstance(value, list)
        and all(isinstance(v, str) and v.startswith(("http://", "https://")) for v in value),
        "array-of-string": isinstance(value, list) and all(isinstance(v, str) for v in value),
        "array-of-object": isinstance(value, list) and all(isinstance(v, dict) for v in value),
        "array-of-array": isinstance(value, list) and all(isinstance(v, list) for v in value),
    }
    if kind not in checks:
        return None
    return None if checks[kind] else f"must be of type {kind}"


@dataclass(frozen=True)
class ModelSpec:
    """A KIE market model as we offer it."""

    id: str
    kind: str
    task: str
    title: str
    inputs: tuple[InputField, ...]
    result_media_type: str | None
    price_credits: Decimal | None
    offered: bool
    not_offered_reason: str | None = None
    category: str = "image"
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    typical_time_s: int = 30
    result_kind: str = "photo"

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ModelSpec:
        price = raw.get("price_credits")
        return cls(
            id=raw["id"], kind=raw["kind"], task=raw["task"], title=raw["title"],
            inputs=tuple(InputField.from_json(f) for f in raw["inputs"]),
            result_media_type=(raw.get("result") or {}).get("media_type"),
            price_credits=Decimal(str(price)) if price is not None else None,
            offered=bool(raw.get("offered")),
            not_offered_reason=raw.get("not_offered_reason"),
            category=raw.get("category", "image"), labels=raw.get("labels") or {},
            typical_time_s=int(raw.get("typical_time_s") or 30), result_kind=raw.get("result_kind") or "photo",
        )

    def name(self, lang: str) -> str:
        return (self.labels.get(lang) or self.labels.get("en") or {}).get("name") or self.title

    def description(self, lang: str) -> str:
        return (self.labels.get(lang) or self.labels.get("en") or {}).get("description") or ""

    @property
    def required_fields(self) -> list[InputField]:
        return [f for f in self.inputs if f.required]

    @property
    def optional_fields(self) -> list[InputField]:
        """Optional fields a chat can ask for (lists of objects are left to KIE's defaults)."""
        return [f for f in self.inputs if not f.required and f.type not in ("array-of-object", "array-of-array")]

    @property
    def deadline_s(self) -> int:
        return DEADLINE_S_BY_KIND.get(self.kind, 15 * 60)

    def field(self, name: str) -> InputField | None:
        return next((f for f in self.inputs if f.name == name), None)

    def with_defaults(self, given: dict[str, Any]) -> dict[str, Any]:
        """The input with every required field that has a default filled in."""
        filled = dict(given)
        for f in self.inputs:
            if f.name not in filled and f.required and f.default is not None:
                filled[f.name] = f.default
        return filled

    def validate(self, given: dict[str, Any]) -> list[str]:
        """Every reason `given` would be refused, in field order; empty when it is valid."""
        if not isinstance(given, dict):
            return ["input must be an object"]
        problems = []
        for f in self.inputs:
            if f.name not in given or given[f.name] is None:
                if f.required:
                    problems.append(f"{f.name} is required")
                continue
            reason = f.check(given[f.name])
            if reason:
                problems.append(reason)
        known = {f.name for f in self.inputs}
        problems.extend(f"{name} is not a field of {self.id}" for name in given if name not in known)
        return problems


class Catalogue:
    """Every model by id; `offered()` are those the bot shows to users."""

    def __init__(self, models: list[ModelSpec]) -> None:
        self._models = {m.id: m for m in models}

    def get(self, model_id: str) -> ModelSpec | None:
        return self._models.get(model_id)

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    def offered(self) -> list[ModelSpec]:
        return [m for m in self._models.values() if m.offered]

    def in_category(self, category: str) -> list[ModelSpec]:
        """Offered models of a category, z-image (free) first, then by name."""
        models = [m for m in self.offered() if m.category == category]
        return sorted(models, key=lambda m: (m.id != "z-image", m.title.lower()))


@functools.cache
def load_catalogue(path: Path = CATALOGUE_PATH) -> Catalogue:
    raw = json.loads(path.read_text(encoding="utf-8"))
    return Catalogue([ModelSpec.from_json(m) for m in raw["models"]])
