"""The untranslated-text check: what a user reads must be in human words of their language, with
no raw field names ("aspect_ratio", "Image urls"), raw ids, numbers printed the way a program
prints them ("42.0", "2.14748e+09") or, on a Russian screen, English words. Brand and model
names, units and file formats are allowed; so is what the user typed, which tests pass as `own`.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable

from config.catalogue import CATALOGUE_PATH, Catalogue

SNAKE_NAME = re.compile(r"\b[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+\b")
RAW_ID = re.compile(r"\b(?=[A-Za-z0-9]*\d)(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{12,}\b")
FLOAT_INTEGER = re.compile(r"(?<![\d.,])-?\d+[.,]0\b(?![.,]?\d)")
EXPONENT = re.compile(r"\d[eE][+-]?\d")
PROGRAM_WORDS = re.compile(r"\b(?:true|false|null|none|nsfw|cfg|urls?)\b", re.IGNORECASE)
LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
LINK = re.compile(r"(?:https?|ftp)://\S+|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|org|net|ai|io)\b")
COMMAND = re.compile(r"/[a-z_]+(?:@\w+)?")
VERSION = re.compile(r"\b([A-Za-z][\w-]*) (\d+\.\d+)\b")     # "Seedream 5.0": a brand's version, not a number
# Written the same way in Russian: units, file formats, language codes.
ALLOWED_EVERYWHERE = frozenset({"HD", "PNG", "JPEG", "JPG", "MP3", "ru", "en", "Telegram"})


class WordingCheck:
    """The check, with the catalogue's names allowed and its field names known."""

    def __init__(self, catalogue: Catalogue) -> None:
        specs = list(catalogue)
        self.names = sorted({s.name(lang) for s in specs for lang in ("en", "ru")}, key=len, reverse=True)
        providers = {m.get("provider") or "" for m in json.loads(CATALOGUE_PATH.read_text(encoding="utf-8"))["models"]}
        # Brands: the Latin words of the Russian model names (the rest of those names is Russian), and providers.
        self.brands = {w for s in specs for w in LATIN_WORD.findall(s.name("ru"))}
        self.brands |= {w for p in providers for w in LATIN_WORD.findall(p)}
        self.allowed = ALLOWED_EVERYWHERE | self.brands
        labels = {f.label("en") for s in specs for f in s.inputs}
        # The way code used to make a label from a field name ("Image urls"), when no real label says so.
        self.made_up = {f.name.replace("_", " ").capitalize() for s in specs for f in s.inputs
                        if "_" in f.name} - labels

    def problems(self, lang: str, screen: str, own: Iterable[str] = ()) -> list[str]:
        """Everything wrong with one screen (a message's text or a button) in `lang`."""
        rest = LINK.sub(" ", screen)
        for words in sorted((w for w in own if w), key=len, reverse=True):
            rest = rest.replace(words, " ")
        for name in self.names:
            rest = rest.replace(name, " ")
        rest = COMMAND.sub(" ", rest)
        rest = VERSION.sub(lambda m: m.group(1) if m.group(1) in self.brands else m.group(0), rest)
        found = [f"raw field name {m!r}" for m in SNAKE_NAME.findall(rest)]
        found += [f"raw id {m!r}" for m in RAW_ID.findall(rest)]
        found += [f"integer written as a float {m!r}" for m in FLOAT_INTEGER.findall(rest)]
        found += [f"number with an exponent in {rest.strip()!r}" for _ in EXPONENT.findall(rest)]
        found += [f"program word {m!r}" for m in PROGRAM_WORDS.findall(rest)]
        found += [f"field name made into a label {m!r}" for m in self.made_up if re.search(rf"\b{re.escape(m)}\b", rest)]
        if lang == "ru":
            found += [f"English word {w!r}" for w in LATIN_WORD.findall(rest) if w not in self.allowed]
        return [f"{p} in {screen!r}" for p in found]
