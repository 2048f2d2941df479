"""The model catalogue: every KIE market model, its input schema, result media and price rule.

Loaded once from `config/models.json` and checked whole at load (a bad entry is a programming
error, every problem listed). Both the bot (to validate what a user typed) and the KIE simulator
(to answer 422 like KIE) validate through `ModelSpec.validate`, and both price through
`PriceRule.kie_credits`, so neither can disagree with the other. Adding a model is a change to the
JSON only; nothing here is model-specific. What a user pays (markup, overrides) is config/pricing.py.
How the chat names each field (label, hint, unit, value words, asked or not) comes from
config/field_words.py, and every field an offered model's chat asks must be worded in every language.
"""
from __future__ import annotations

import datetime
import enum
import functools
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from config.field_words import NO_WORDS, Ask, FieldWords, words_for

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
    words: FieldWords = NO_WORDS

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> InputField:
        """One input of a catalogue entry, with its words (ValueError when they are malformed)."""
        enum = raw.get("enum")
        return cls(
            name=raw["name"], type=raw["type"], required=bool(raw.get("required")),
            enum=tuple(enum) if enum else None, default=raw.get("default"),
            min=raw.get("min"), max=raw.get("max"),
            min_length=raw.get("min_length"), max_length=raw.get("max_length"),
            min_items=raw.get("min_items"), max_items=raw.get("max_items"),
            media=raw.get("media"), description=raw.get("description") or "",
            words=words_for(raw["name"], raw.get("words")),
        )

    @property
    def asked(self) -> bool:
        """Whether the chat asks this field at all (internal switches are left to KIE's default)."""
        return self.words.ask is Ask.YES and self.type not in ("array-of-object", "array-of-array")

    def label(self, lang: str) -> str:
        """What the chat calls this field ("Aspect ratio"; the name made readable when unworded)."""
        return self.words.label.get(lang) or self.words.label.get("en") or self.name.replace("_", " ").capitalize()

    def hint(self, lang: str) -> str:
        """One line on what the field does, or "" when unworded."""
        return self.words.hint.get(lang) or self.words.hint.get("en") or ""

    def wording_problems(self) -> list[str]:
        """Every word the chat lacks to ask this field in every language."""
        choices = () if self.type == "boolean" else self.enum or ()
        return [f"{self.name} {problem}" for problem in self.words.problems(choices, self.default)]

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


class PriceUnit(str, enum.Enum):
    """What KIE counts when it charges a model."""

    TASK = "task"           # one charge per task
    IMAGE = "image"         # per image: the count field's value, 1 when unset
    SECOND = "second"       # per second of output: the count field (default "duration")
    K_CHARS = "1k_chars"    # per started 1000 characters of the count field ("text" or "prompt")


PRICE_KEYS = frozenset({"credits", "unit", "count_field", "by_field", "by_value", "source", "date", "note"})
_NUMERIC_TYPES = ("integer", "number", "string")


def _decimal(value: Any) -> Decimal | None:
    """A decimal string (or int) as a finite Decimal of at least 0; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return amount if amount.is_finite() and amount >= 0 else None


def _number(value: Any) -> Decimal | None:
    """An input value that counts something (5, 2.5, "10") as a Decimal >= 0, else None."""
    if isinstance(value, float):
        return Decimal(str(value)) if math.isfinite(value) and value >= 0 else None
    return _decimal(value)


def _choice_key(value: Any) -> str:
    """The by_value key of an input value: JSON's spelling for booleans, the text otherwise."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class PriceRule:
    """How KIE charges one model: `credits` per `unit`, the units counted from `count_field`, the
    rate picked by the value of `by_field` (`by_value`), and where the figure comes from.

    An unset `by_field` costs its default's rate, else the dearest; an unset count field counts
    its default, else its smallest choice: a price is never computed below what KIE may charge.
    `credits` is the rate of the default choice (the dearest one when there is no default)."""

    credits: Decimal
    unit: PriceUnit
    source: str
    date: datetime.date
    count_field: InputField | None = None
    by_field: InputField | None = None
    by_value: tuple[tuple[str, Decimal], ...] = ()
    note: str = ""

    @classmethod
    def from_json(cls, raw: Any, inputs: Mapping[str, InputField]) -> PriceRule:
        """The rule in a catalogue entry's `price`; ValueError naming every problem."""
        if not isinstance(raw, dict):
            raise ValueError("price must be an object or null")
        problems = [f"price has an unknown key {key!r}" for key in sorted(set(raw) - PRICE_KEYS)]
        amount = _decimal(raw.get("credits"))
        if amount is None:
            problems.append("price.credits must be a decimal string of at least 0")
        try:
            unit = PriceUnit(raw.get("unit"))
        except ValueError:
            problems.append(f"price.unit must be one of {', '.join(u.value for u in PriceUnit)}")
            unit = PriceUnit.TASK
        count, count_problems = _count_field(raw.get("count_field"), unit, inputs)
        by, by_value, by_problems = _by_field(raw.get("by_field"), raw.get("by_value"), inputs)
        problems += count_problems + by_problems
        source, note = raw.get("source"), raw.get("note", "")
        if not isinstance(source, str) or not source.strip():
            problems.append("price.source must say where the figure comes from")
        if not isinstance(note, str):
            problems.append("price.note must be text")
        try:
            date = datetime.date.fromisoformat(str(raw.get("date")))
        except ValueError:
            problems.append("price.date must be a date, YYYY-MM-DD")
            date = datetime.date.min
        if amount is not None and by is not None and by_value:
            expected = dict(by_value).get(_choice_key(by.default)) if by.default is not None else None
            expected = max(v for _, v in by_value) if expected is None else expected
            if amount != expected:
                problems.append(f"price.credits must be {expected}, the rate of the default {by.name} "
                                "(the dearest one when it has no default)")
        if problems:
            raise ValueError("; ".join(problems))
        assert amount is not None
        assert isinstance(source, str)
        assert isinstance(note, str)
        return cls(credits=amount, unit=unit, source=source, date=date, count_field=count, by_field=by,
                   by_value=by_value, note=note)

    def kie_credits(self, given: Mapping[str, Any]) -> Decimal:
        """What KIE charges for the input `given` (validated or not), exactly."""
        return self.rate(given) * self.units(given)

    def rate(self, given: Mapping[str, Any]) -> Decimal:
        """Credits per unit for the choice made in `given`."""
        if self.by_field is None:
            return self.credits
        rates = dict(self.by_value)
        value = given.get(self.by_field.name)
        if value is None:
            return self.credits
        return rates.get(_choice_key(value), max(rates.values()))

    def units(self, given: Mapping[str, Any]) -> Decimal:
        """How many units `given` asks for (at least 1 for tasks, images and characters)."""
        field = self.count_field
        if self.unit is PriceUnit.TASK or field is None:
            return Decimal(1)
        value = given.get(field.name)
        if self.unit is PriceUnit.K_CHARS:
            text = value if isinstance(value, str) else ""
            return Decimal(max(1, -(-len(text) // 1000)))
        counted = _number(value)
        if counted is not None and (self.unit is PriceUnit.SECOND or counted >= 1):
            return counted
        return self._unset_units(field)

    def lowest_rate(self) -> Decimal:
        """The cheapest rate over the choices of `by_field`."""
        return min((v for _, v in self.by_value), default=self.credits)

    def lowest_units(self) -> Decimal:
        """The fewest units any valid input can ask for."""
        field = self.count_field
        if self.unit in (PriceUnit.TASK, PriceUnit.K_CHARS) or field is None:
            return Decimal(1)
        choices = [n for n in (_number(v) for v in field.enum or ()) if n is not None]
        if choices:
            lowest = min(choices)
        elif field.min is not None:
            lowest = Decimal(str(field.min))
        else:
            return self._unset_units(field)
        return max(lowest, Decimal(1)) if self.unit is PriceUnit.IMAGE else lowest

    def _unset_units(self, field: InputField) -> Decimal:
        """What an unset count field counts: its default, else its smallest choice or minimum
        (seconds), else 1 (images)."""
        default = _number(field.default)
        if default is not None and (self.unit is PriceUnit.SECOND or default >= 1):
            return default
        if self.unit is PriceUnit.SECOND:
            choices = [n for n in (_number(v) for v in field.enum or ()) if n is not None]
            if choices:
                return min(choices)
            if field.min is not None:
                return Decimal(str(field.min))
        return Decimal(1)


def _count_field(name: Any, unit: PriceUnit, inputs: Mapping[str, InputField]) -> tuple[InputField | None, list[str]]:
    """The input field that counts the units of `unit` (explicit or the unit's default)."""
    if unit is PriceUnit.TASK:
        return None, ([] if name is None else ["price.count_field makes no sense for unit task"])
    if name is None:
        if unit is PriceUnit.IMAGE:
            return None, []
        name = "duration" if unit is PriceUnit.SECOND else ("text" if "text" in inputs else "prompt")
    field = inputs.get(name) if isinstance(name, str) else None
    if field is None:
        return None, [f"price.count_field {name!r} is not an input of this model"]
    if unit is PriceUnit.K_CHARS:
        return field, ([] if field.type == "string" else [f"price.count_field {name!r} must be text"])
    if field.type not in _NUMERIC_TYPES or (field.type == "string" and field.enum is None and field.min is None):
        return field, [f"price.count_field {name!r} must be a number or a choice of numbers"]
    if field.enum is not None and any(_number(v) is None for v in field.enum):
        return field, [f"price.count_field {name!r} has choices that are not numbers"]
    if unit is PriceUnit.SECOND and field.default is None and field.enum is None and field.min is None:
        return field, [f"price.count_field {name!r} has no default, choices or minimum to count when unset"]
    return field, []


def _by_field(name: Any, raw_values: Any, inputs: Mapping[str, InputField]
              ) -> tuple[InputField | None, tuple[tuple[str, Decimal], ...], list[str]]:
    """The input field whose value picks the rate, and the rate of each of its values."""
    if name is None and raw_values is None:
        return None, (), []
    field = inputs.get(name) if isinstance(name, str) else None
    if field is None:
        return None, (), [f"price.by_field {name!r} is not an input of this model"]
    if field.type == "boolean":
        keys = ["false", "true"]
    elif field.enum is not None:
        keys = [_choice_key(v) for v in field.enum]
    else:
        return None, (), [f"price.by_field {name!r} must be a choice or a yes/no field"]
    if not isinstance(raw_values, dict) or set(raw_values) != set(keys):
        return None, (), [f"price.by_value must give a rate for exactly these values of {name}: {', '.join(keys)}"]
    rates = [(key, _decimal(raw_values[key])) for key in keys]
    bad = [key for key, rate in rates if rate is None]
    if bad:
        return None, (), [f"price.by_value {', '.join(bad)} must be decimal strings of at least 0"]
    return field, tuple((key, rate) for key, rate in rates if rate is not None), []


@dataclass(frozen=True)
class ModelSpec:
    """A KIE market model as we offer it."""

    id: str
    kind: str
    task: str
    title: str
    inputs: tuple[InputField, ...]
    result_media_type: str | None
    price: PriceRule | None
    offered: bool
    not_offered_reason: str | None = None
    category: str = "image"
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    typical_time_s: int = 30
    result_kind: str = "photo"

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ModelSpec:
        """The entry of models.json; ValueError (naming the model) when its price rule or the
        words of an input are bad."""
        try:
            inputs = tuple(InputField.from_json(f) for f in raw["inputs"])
            price = None if raw.get("price") is None else PriceRule.from_json(raw["price"], {f.name: f for f in inputs})
        except ValueError as exc:
            raise ValueError(f"{raw['id']}: {exc}") from None
        return cls(
            id=raw["id"], kind=raw["kind"], task=raw["task"], title=raw["title"], inputs=inputs,
            result_media_type=(raw.get("result") or {}).get("media_type"), price=price,
            offered=bool(raw.get("offered")),
            not_offered_reason=raw.get("not_offered_reason"),
            category=raw.get("category", "image"), labels=raw.get("labels") or {},
            typical_time_s=int(raw.get("typical_time_s") or 30), result_kind=raw.get("result_kind") or "photo",
        )

    @property
    def price_credits(self) -> Decimal | None:
        """KIE credits per unit for the default choices, or None when the catalogue has no price."""
        return self.price.credits if self.price is not None else None

    def name(self, lang: str) -> str:
        return (self.labels.get(lang) or self.labels.get("en") or {}).get("name") or self.title

    def description(self, lang: str) -> str:
        return (self.labels.get(lang) or self.labels.get("en") or {}).get("description") or ""

    @property
    def required_fields(self) -> list[InputField]:
        """Required fields the chat asks, in order (one it never asks has a default, which
        `with_defaults` fills in)."""
        return [f for f in self.inputs if f.required and f.asked]

    @property
    def optional_fields(self) -> list[InputField]:
        """Optional fields the chat offers under More options (lists of objects and internal
        switches are left to KIE's defaults)."""
        return [f for f in self.inputs if not f.required and f.asked]

    def wording_problems(self) -> list[str]:
        """Why the chat cannot ask this model's questions in every language (empty when it can)."""
        problems = [f"{self.id}: {p}" for f in [*self.required_fields, *self.optional_fields]
                    for p in f.wording_problems()]
        return problems + [f"{self.id}: {f.name} is required, never asked and has no default" for f in self.inputs
                           if f.required and not f.asked and f.default is None]

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
    """The catalogue in `path`; ValueError listing every bad entry, one line each."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    models, problems = [], []
    for entry in raw["models"]:
        try:
            spec = ModelSpec.from_json(entry)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        models.append(spec)
        problems += spec.wording_problems() if spec.offered else []
    if problems:
        raise ValueError(f"{path}:\n" + "\n".join(problems))
    return Catalogue(models)
