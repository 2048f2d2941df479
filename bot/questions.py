"""How the chat words a model's questions and answers, in the user's language: a field's label
and hint, its choices as button labels (units, Yes/No, the default marked, raw ids left out),
values shown back the way people write them (42, not 42.0; 2147483647, not 2.14748e+09), and a
text result (speech to text, a character id) as readable text rather than JSON.

Pure functions of the catalogue and config/texts: no Telegram, no database. bot/wizard.py sends
what these make; callback data stays there (a choice is known by its index in the field's values).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from config.catalogue import InputField, ModelSpec
from config.field_words import Unit
from config.texts import text
from kie.uploads import is_upload

MEDIA_WORD = {"image": "media_image", "video": "media_video", "audio": "media_audio"}
ROW_WIDTH = 30          # characters a row of buttons shows on a phone before cutting labels short
ROW_MOST = 3
SHOWN_MAX = 200
UNIT_KEY = {Unit.SECONDS: "unit_seconds", Unit.TIMES: "unit_times"}
TEXT_KEYS = ("text", "transcript", "transcription", "content", "result", "output", "answer", "message")
ID_KEYS = frozenset({"taskId", "task_id", "id", "request_id", "requestId"})


@dataclass(frozen=True)
class Question:
    """What the chat says to ask one field, and its buttons: (index in `choice_values`, label)."""

    text: str
    choices: tuple[tuple[int, str], ...] = ()


def choice_values(f: InputField) -> list[Any]:
    """Every value a choice button of `f` may carry, by index (Yes and No for a boolean)."""
    if f.type == "boolean":
        return [True, False]
    return list(f.enum) if f.enum else []


def offered_choices(f: InputField) -> list[tuple[int, Any]]:
    """The values offered as buttons, with their index: all of them, or only the named ones
    when the field's words say so (ElevenLabs voices by name, not by raw voice id)."""
    values = list(enumerate(choice_values(f)))
    if f.words.named_only:
        return [(i, v) for i, v in values if f.words.value("en", v) is not None]
    return values


def number(lang: str, value: float) -> str:
    """A number as people write it: whole numbers without ".0" or an exponent, a decimal comma in
    Russian."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return str(int(value))
    digits = format(Decimal(repr(value)), "f")
    digits = digits.rstrip("0").rstrip(".") if "." in digits else digits
    return digits.replace(".", ",") if lang == "ru" else digits


def shown(lang: str, f: InputField, value: Any) -> str:
    """An answer as the chat shows it back: "5 s", "Yes", "Portrait 3:4", "📎" for an upload."""
    if isinstance(value, list):
        return ", ".join(shown(lang, f, v) for v in value)
    if is_upload(value):
        return "📎"
    if isinstance(value, bool):
        return text(lang, "btn_yes" if value else "btn_no")
    words = f.words.value(lang, value)
    if words is not None:
        return words
    if isinstance(value, (int, float)):
        return _with_unit(lang, f, number(lang, value))
    words = str(value)
    if f.words.unit is not None and _numeric(words):
        return _with_unit(lang, f, words)
    return words if len(words) <= SHOWN_MAX else words[:SHOWN_MAX - 1] + "…"


def choice_label(lang: str, f: InputField, value: Any) -> str:
    """A choice's button: the value in words, "· default" after the field's default."""
    words = shown(lang, f, value)
    is_default = f.default is not None and value == f.default and type(value) is type(f.default)
    return text(lang, "choice_default", value=words) if is_default else words


def range_words(lang: str, f: InputField) -> str:
    """" from 2 to 15 s" for a number field with both limits, else ""."""
    if f.min is None or f.max is None:
        return ""
    return text(lang, "range", min=number(lang, f.min), max=_with_unit(lang, f, number(lang, f.max)))


def question(lang: str, f: InputField) -> Question:
    """The question for one field, by its type: buttons for a choice or a yes/no, an upload or a
    link for media, a typed number with its range, words separated by commas, or text with its
    limit. The hint (what the field does) follows on its own line."""
    name, hint = f.label(lang), f.hint(lang)
    offered = offered_choices(f)
    if offered:
        ask = text(lang, "ask_bool_field" if f.type == "boolean" else "ask_choice_field", field=name)
        return Question(_with_hint(ask, hint), tuple((i, choice_label(lang, f, v)) for i, v in offered))
    if f.media:
        several = f.type == "array-of-url" and (f.max_items or 2) > 1
        count = text(lang, "media_count", max=f.max_items) if several and f.max_items else ""
        what = text(lang, MEDIA_WORD.get(str(f.media.get("kind")), "media_file"))
        return Question(_with_hint(text(lang, "ask_media_field", field=name, what=what, count=count), hint))
    if f.type in ("integer", "number"):
        return Question(_with_hint(text(lang, f"ask_{f.type}_field", field=name, range=range_words(lang, f)), hint))
    if f.type == "array-of-string":
        return Question(_with_hint(text(lang, "ask_list_field", field=name), hint))
    if f.name == "prompt" and f.max_length:
        return Question(text(lang, "ask_prompt_field", limit=f.max_length))
    limit = text(lang, "limit_chars", limit=f.max_length) if f.max_length else ""
    return Question(_with_hint(text(lang, "ask_text_field", field=name, limit=limit), hint))


def summary(lang: str, spec: ModelSpec, answers: dict[str, Any]) -> str:
    """The answers so far, one "• Label: value" line each, in the model's field order."""
    return "\n".join(f"• {f.label(lang)}: {shown(lang, f, answers[f.name])}" for f in spec.inputs if f.name in answers)


def input_problems(lang: str, spec: ModelSpec, given: dict[str, Any]) -> list[str]:
    """Why `given` would be refused (ModelSpec.validate), one plain sentence per field in the
    user's language; uploads must already stand in as links, as bot.wizard.draft_problems does."""
    problems = []
    for f in spec.inputs:
        value = given.get(f.name)
        if value is None:
            if f.required:
                problems.append(text(lang, "field_missing", field=f.label(lang)))
        elif f.check(value):
            problems.append(text(lang, "field_not_fit", field=f.label(lang)))
    return problems


def button_rows(buttons: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Buttons in rows, as many to a row (at most three) as fit a phone's width uncut: Telegram
    gives each button of a row the same width."""
    rows: list[list[tuple[str, str]]] = []
    for button in buttons:
        row = rows[-1] if rows else []
        widest = max([len(b[0]) for b in row] + [len(button[0])])
        if row and len(row) < ROW_MOST and widest * (len(row) + 1) <= ROW_WIDTH:
            row.append(button)
        else:
            rows.append([button])
    return rows


def readable_result(lang: str, raw: str | None) -> str:
    """A text model's result (KIE's resultObject, stored as JSON text) as something to read: the
    transcript (by speaker when the model told speakers apart), a character id with what to do
    with it, or the text values it holds; text that is not JSON as it is."""
    if raw is None or not raw.strip():
        return ""
    try:
        value = json.loads(raw)
    except ValueError:
        return raw.strip()
    return _readable(lang, value).strip()


def _readable(lang: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(part for part in (_readable(lang, v) for v in value) if part)
    if not isinstance(value, dict):
        return "" if value is None else number(lang, value) if isinstance(value, (int, float)) else str(value)
    speakers = _by_speaker(lang, value.get("words"))
    if speakers:
        return speakers
    if isinstance(value.get("character_id"), str):
        return text(lang, "result_character", id=value["character_id"])
    for key in TEXT_KEYS:
        if value.get(key) not in (None, "", [], {}):
            return _readable(lang, value[key])
    return "\n".join(part for key, v in value.items() if key not in ID_KEYS and (part := _readable(lang, v)))


def _by_speaker(lang: str, words: Any) -> str:
    """A diarised transcript, one line per turn ("Speaker 1: …"); "" unless two or more speak."""
    if not isinstance(words, list) or not all(isinstance(w, dict) for w in words):
        return ""
    speakers: dict[str, int] = {}
    turns: list[tuple[int, list[str]]] = []
    for word in words:
        who, said = word.get("speaker_id"), word.get("text")
        if not isinstance(said, str):
            continue
        if isinstance(who, str):
            n = speakers.setdefault(who, len(speakers) + 1)
            if not turns or turns[-1][0] != n:
                turns.append((n, []))
        if turns:
            turns[-1][1].append(said)
    if len(speakers) < 2:
        return ""
    return "\n".join(f"{text(lang, 'result_speaker', n=n)}: {''.join(said).strip()}" for n, said in turns)


def _with_unit(lang: str, f: InputField, digits: str) -> str:
    unit = f.words.unit
    return digits if unit is None else text(lang, UNIT_KEY[unit], n=digits)


def _with_hint(ask: str, hint: str) -> str:
    return f"{ask}\n{hint}" if hint else ask


def _numeric(words: str) -> bool:
    try:
        float(words)
    except ValueError:
        return False
    return True
