"""Telegram's length limits, and cutting text to fit them: every text and caption we send
fits, so no message is ever refused for its length (a refused failure notice would leave the
user with "⏳ starting…" for good)."""
from __future__ import annotations

TEXT_LIMIT = 4096            # message text, in UTF-16 code units as Telegram counts them
CAPTION_LIMIT = 1024         # media caption
ELLIPSIS = "…"


def fit(text: str, limit: int = TEXT_LIMIT) -> str:
    """`text` cut to at most `limit` UTF-16 code units, ending with "…" when cut."""
    if _utf16_len(text) <= limit:
        return text
    budget = limit - _utf16_len(ELLIPSIS)
    cut: list[str] = []
    used = 0
    for char in text:
        size = _utf16_len(char)
        if used + size > budget:
            break
        cut.append(char)
        used += size
    return "".join(cut) + ELLIPSIS


def fit_caption(caption: str | None) -> str | None:
    return fit(caption, CAPTION_LIMIT) if caption is not None else None


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2
