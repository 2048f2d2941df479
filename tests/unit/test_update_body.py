"""parse_update: what the webhook accepts as a Telegram update, as a table."""
from __future__ import annotations

from typing import Any

import pytest

from bot.update_body import BadUpdate, parse_update

MESSAGE = {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private"}, "text": "hi"}


@pytest.mark.parametrize(("body", "update_id"), [
    ({"update_id": 0}, 0),
    ({"update_id": 2 ** 63 - 1}, 2 ** 63 - 1),
    ({"update_id": 7, "message": MESSAGE}, 7),
    ({"update_id": 8, "some_future_kind": {"x": 1}}, 8),
])
def test_a_decodable_update_gives_its_update_id(body: dict[str, Any], update_id: int) -> None:
    assert parse_update(body) == update_id


@pytest.mark.parametrize(("body", "reason"), [
    ([], "body must be a JSON object"),
    ("update", "body must be a JSON object"),
    (None, "body must be a JSON object"),
    ({}, "update_id must be an integer"),
    ({"update_id": True}, "update_id must be an integer"),
    ({"update_id": False}, "update_id must be an integer"),
    ({"update_id": 1e30}, "update_id must be an integer"),
    ({"update_id": 1.0}, "update_id must be an integer"),
    ({"update_id": "1"}, "update_id must be an integer"),
    ({"update_id": None}, "update_id must be an integer"),
    ({"update_id": -1}, "update_id is out of range"),
    ({"update_id": 2 ** 63}, "update_id is out of range"),
    ({"update_id": 1, "message": {"x": 1}}, "body is not a Telegram update"),
    ({"update_id": 1, "message": "hi"}, "body is not a Telegram update"),
    ({"update_id": 1, "message": {**MESSAGE, "chat": 5}}, "body is not a Telegram update"),
    ({"update_id": 1, "callback_query": {"id": "q"}}, "body is not a Telegram update"),
])
def test_anything_else_is_refused_with_a_plain_reason(body: object, reason: str) -> None:
    with pytest.raises(BadUpdate) as caught:
        parse_update(body)
    assert caught.value.reason == reason
