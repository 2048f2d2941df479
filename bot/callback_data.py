"""callback_data, built and parsed in one place. Stable short strings (≤ 64 bytes) that survive
restarts: `menu:create`, `model:<id>`, `ar:<draft>:<ratio>`."""
from __future__ import annotations

from dataclasses import dataclass

MAX_BYTES = 64


@dataclass(frozen=True)
class Menu:
    action: str


@dataclass(frozen=True)
class PickModel:
    model_id: str


@dataclass(frozen=True)
class PickRatio:
    draft: str
    ratio: str


Data = Menu | PickModel | PickRatio


def build(data: Data) -> str:
    match data:
        case Menu(action=action):
            out = f"menu:{action}"
        case PickModel(model_id=model_id):
            out = f"model:{model_id}"
        case PickRatio(draft=draft, ratio=ratio):
            out = f"ar:{draft}:{ratio}"
    if len(out.encode()) > MAX_BYTES:
        raise ValueError(f"callback_data over {MAX_BYTES} bytes: {out!r}")
    return out


def parse(raw: str | None) -> Data | None:
    """None for anything we did not build (an old or foreign button)."""
    kind, _, rest = (raw or "").partition(":")
    if kind == "menu" and rest:
        return Menu(rest)
    if kind == "model" and rest:
        return PickModel(rest)
    if kind == "ar":
        draft, _, ratio = rest.partition(":")
        if draft and ratio:
            return PickRatio(draft, ratio)
    return None
