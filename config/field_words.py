"""How the chat names each input field: a label and a hint in every language, the unit of its
numbers, the words for its values, and whether the chat asks it at all.

The shared table (config/field_words.json) words the field names most models share; an input in
config/models.json may carry its own `words`, merged over the shared entry, where a model means
something else by the same name. Words only: this module never lays out a question or talks to
Telegram (bot/questions.py does), and it never changes what KIE is sent. It names the languages
the table must cover itself (equal to config.texts.LANGS, a test says) so that the catalogue,
which the actors use, never imports the texts.
"""
from __future__ import annotations

import enum
import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WORDS_PATH = Path(__file__).with_name("field_words.json")
LANGS: tuple[str, ...] = tuple(json.loads(WORDS_PATH.read_text(encoding="utf-8"))["languages"])
ENTRY_KEYS = frozenset({*LANGS, "unit", "ask", "values", "choices"})
WORDY = re.compile(r"[A-Za-z]{2,}")     # a choice like "auto" needs words; "16:9", "720p", "1K" do not


class Unit(str, enum.Enum):
    """What a field's numbers count, shown with them ("5 s"; "times" puts a multiplication sign before)."""

    SECONDS = "seconds"
    TIMES = "times"


class Ask(str, enum.Enum):
    """Whether the chat asks a field: as the schema says (required in the wizard, optional under
    More options), or never (KIE's default is used; internal or risky switches)."""

    YES = "yes"
    NEVER = "never"


@dataclass(frozen=True)
class FieldWords:
    """One field's words. `values` maps a value's text ("auto", "Rachel") to its words by
    language; with `named_only`, only the values that have words are offered as buttons (a list
    of raw ids stays out of sight, though KIE still accepts it)."""

    label: Mapping[str, str] = field(default_factory=dict)
    hint: Mapping[str, str] = field(default_factory=dict)
    unit: Unit | None = None
    ask: Ask = Ask.YES
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    named_only: bool = False

    def value(self, lang: str, value: Any) -> str | None:
        """The words for `value` in `lang` (English when that language lacks them), or None."""
        words = self.values.get(value_key(value))
        return None if words is None else (words.get(lang) or words.get("en"))

    def problems(self, choices: Sequence[Any], default: Any) -> list[str]:
        """What a field the chat asks lacks in some language ("has no label (ru)", "has no words
        for the choice 'auto'"), given the values it offers as buttons and its default."""
        found = [f"has no {part} ({lang})" for lang in LANGS
                 for part, words in (("label", self.label), ("hint", self.hint)) if not words.get(lang)]
        named = [v for v in choices if value_key(v) in self.values]
        wordy = named if self.named_only else [v for v in choices if WORDY.search(str(v))]
        found += [f"has no words for the choice {v!r}" for v in wordy
                  if any(not self.values.get(value_key(v), {}).get(lang) for lang in LANGS)]
        if self.named_only and default is not None and default not in named:
            found.append(f"has a default {default!r} that is not one of the named choices")
        return found


NO_WORDS = FieldWords()


def value_key(value: Any) -> str:
    """A value as the words table spells it: JSON's true/false for booleans, the text otherwise."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@functools.cache
def shared_table(path: Path = WORDS_PATH) -> Mapping[str, Mapping[str, Any]]:
    """The shared entries by field name, as written in `path`."""
    fields: Mapping[str, Mapping[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["fields"]
    return fields


def words_for(name: str, own: Any = None) -> FieldWords:
    """The words of field `name`: the shared entry with the input's `own` entry merged over it
    (languages and values key by key). ValueError naming every problem of a malformed entry."""
    shared = shared_table().get(name) or {}
    if own is not None and not isinstance(own, dict):
        raise ValueError(f"{name}: words must be an object")
    entry: dict[str, Any] = {**shared, **(own or {})}
    for lang in LANGS:
        entry[lang] = {**shared.get(lang, {}), **(own or {}).get(lang, {})}
    entry["values"] = {**shared.get("values", {}), **(own or {}).get("values", {})}
    problems = [f"{name}: words have an unknown key {key!r}" for key in sorted(set(entry) - ENTRY_KEYS)]
    try:
        unit = Unit(entry["unit"]) if entry.get("unit") is not None else None
    except ValueError:
        problems.append(f"{name}: words.unit must be one of {', '.join(u.value for u in Unit)}")
        unit = None
    try:
        ask = Ask(entry.get("ask", Ask.YES.value))
    except ValueError:
        problems.append(f"{name}: words.ask must be one of {', '.join(a.value for a in Ask)}")
        ask = Ask.YES
    if entry.get("choices") not in (None, "named"):
        problems.append(f"{name}: words.choices can only be \"named\"")
    texts = [entry[lang].get(part) for lang in LANGS for part in ("label", "hint")]
    texts += [words.get(lang) for words in entry["values"].values() if isinstance(words, dict) for lang in LANGS]
    if any(t is not None and (not isinstance(t, str) or not t.strip()) for t in texts) or not all(
            isinstance(words, dict) for words in entry["values"].values()):
        problems.append(f"{name}: every label, hint and value's words must be text")
    if problems:
        raise ValueError("; ".join(problems))
    return FieldWords(
        label={lang: entry[lang]["label"] for lang in LANGS if entry[lang].get("label")},
        hint={lang: entry[lang]["hint"] for lang in LANGS if entry[lang].get("hint")},
        unit=unit, ask=ask, values=entry["values"], named_only=entry.get("choices") == "named",
    )
