"""KIE task records (recordInfo answers and callback bodies), normalised into one shape.

KIE spells fields several ways (`taskId`/`task_id`, `msg`/`message`) and encodes `resultJson`
and `param` as JSON strings; everything that reads a record goes through `parse_record`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any


@dataclass(frozen=True)
class TaskRecord:
    task_id: str
    state: str                      # as KIE spelled it; see actors/decisions.py for its meaning
    result_urls: tuple[str, ...] = ()
    fail_code: str | None = None
    fail_msg: str | None = None
    callback_url: str | None = None  # from `param`, to prove a task belongs to a job
    result_text: str | None = None   # text models answer `resultObject` instead of URLs
    credits_consumed: Decimal | None = None  # what KIE charged for the task, when it says so
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def _loads_maybe(value: Any) -> Any:
    """A JSON string decoded, an object as is, anything unparseable as None."""
    if isinstance(value, (dict, list)):
        return value
    if isinstance(value, str) and value.strip():
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            return None
    return None


def task_id_of(body: Any) -> str | None:
    """The task id wherever a callback body put it."""
    if not isinstance(body, dict):
        return None
    data = body.get("data")
    if not isinstance(data, dict):
        data = {}
    for candidate in (body.get("taskId"), data.get("taskId"), data.get("task_id")):
        if isinstance(candidate, str) and candidate:
            return candidate
    return None


def _urls(value: Any) -> tuple[str, ...]:
    """Result URLs: a list of http(s) strings; a lone string counts as a list of one. Anything
    else in the list (null, a number, a nested object) is left out, never turned into a URL."""
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return tuple(u.strip() for u in items if isinstance(u, str) and u.strip().startswith(("https://", "http://")))


def _text(value: Any) -> str | None:
    """A text model's `resultObject` as text: a string as is, an object as JSON; empty is None."""
    if value is None or value in ("", {}, []):
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _credits(data: dict[str, Any]) -> Decimal | None:
    """KIE's charge for a task, in whichever spelling it used (`creditsConsumed`, the legacy
    `consumeCredits`, `credits_consumed`); None when absent or not a number."""
    for key in ("creditsConsumed", "consumeCredits", "credits_consumed"):
        value = data.get(key)
        if value is None or isinstance(value, bool):
            continue
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            continue
        if amount.is_finite() and amount >= 0:
            return amount
    return None


def parse_record(data: dict[str, Any]) -> TaskRecord:
    """Normalise a recordInfo `data` object or a callback's `data`."""
    task_id = task_id_of({"data": data}) or ""
    result = _loads_maybe(data.get("resultJson"))
    result = result if isinstance(result, dict) else {}
    param = _loads_maybe(data.get("param")) or {}
    callback_url = param.get("callBackUrl") if isinstance(param, dict) else None
    return TaskRecord(
        task_id=task_id,
        state=str(data.get("state") or ""),
        result_urls=_urls(result.get("resultUrls") or result.get("result_urls")),
        fail_code=str(data["failCode"]) if data.get("failCode") not in (None, "") else None,
        fail_msg=str(data["failMsg"]) if data.get("failMsg") not in (None, "") else None,
        callback_url=callback_url if isinstance(callback_url, str) else None,
        result_text=_text(result.get("resultObject")),
        credits_consumed=_credits(data),
        raw=data,
    )
