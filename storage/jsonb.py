"""What a jsonb column can hold: text without NUL characters and without lone surrogates.

Bodies from the outside (KIE callbacks, Telegram updates) may contain either, because a user
may type anything and JSON allows `\\u0000` and `\\ud800`. Both become U+FFFD so the body can
still be stored, and therefore acknowledged. Never used to alter anything but text.
"""
from __future__ import annotations

import re
from typing import Any

REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: Any) -> Any:
    """`value` with every NUL and lone surrogate, in keys and strings, replaced by U+FFFD."""
    if isinstance(value, str):
        return _UNSTORABLE.sub(REPLACEMENT, value)
    if isinstance(value, list):
        return [storable(v) for v in value]
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    return value
