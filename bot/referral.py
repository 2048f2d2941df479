"""Referral links: `https://t.me/<bot>?start=ref_<code>`, the code being the user id in base 36.

Only the link's shape lives here; who may refer whom (once, never oneself, no loops, before a
first purchase) is storage.ledger.record_referral's rule, and the bonuses are the price file's.
"""
from __future__ import annotations

import string

PREFIX = "ref_"
_DIGITS = string.digits + string.ascii_lowercase
MAX_CODE = 13           # base-36 digits of the largest Telegram user id we accept (< 2**63)


def code_for(user_id: int) -> str:
    """The user id in base 36 (lower case)."""
    if user_id <= 0:
        raise ValueError("a user id is positive")
    digits = []
    while user_id:
        user_id, rest = divmod(user_id, 36)
        digits.append(_DIGITS[rest])
    return "".join(reversed(digits))


def link(bot_username: str, user_id: int) -> str:
    return f"https://t.me/{bot_username}?start={PREFIX}{code_for(user_id)}"


def referrer_in(args: list[str] | None) -> int | None:
    """The referrer of a `/start ref_<code>` (PTB's context.args); None for anything else."""
    if not args or not args[0].startswith(PREFIX):
        return None
    code = args[0][len(PREFIX):].lower()
    if not code or len(code) > MAX_CODE or any(c not in _DIGITS for c in code):
        return None
    user_id = int(code, 36)
    return user_id if 0 < user_id < 2 ** 63 else None
