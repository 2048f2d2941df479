"""What the Telegram webhook accepts as an update: checked at the HTTP edge, before storing.

A stored update that PTB cannot decode would stop the intake, and a wrong `update_id` would
shadow a real update, so anything doubtful is refused here with a short plain reason. This
module never stores, logs or echoes the body.
"""
from __future__ import annotations

from typing import Any

from telegram import Update

UPDATE_ID_LIMIT = 2 ** 63  # update_id is a Postgres bigint


class BadUpdate(ValueError):
    """The body is not a Telegram update we can store and decode."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_update(body: object) -> int:
    """The update_id of `body`, or BadUpdate saying why it is refused."""
    if not isinstance(body, dict):
        raise BadUpdate("body must be a JSON object")
    update_id = body.get("update_id")
    # bool is an int in Python: `true` would be stored as update 1 and shadow the real one.
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        raise BadUpdate("update_id must be an integer")
    if not 0 <= update_id < UPDATE_ID_LIMIT:
        raise BadUpdate("update_id is out of range")
    _decodes(body)
    return update_id


def _decodes(body: dict[str, Any]) -> None:
    """PTB must decode the update exactly as the intake will, whatever is wrong inside it."""
    try:
        Update.de_json(body, None)
    except Exception:  # noqa: BLE001 - PTB raises KeyError, TypeError, AttributeError, ...: all mean "not an update"
        raise BadUpdate("body is not a Telegram update") from None
