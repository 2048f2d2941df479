"""callback_data, built and parsed in one place: short stable strings (≤ 64 bytes) that survive
restarts. Fields and enum values travel as indexes into the catalogue, drafts as short hex ids,
jobs as their ids; anything unparseable is an old or foreign button."""
from __future__ import annotations

from dataclasses import dataclass

MAX_BYTES = 64


@dataclass(frozen=True)
class Menu:
    action: str                 # home | create


@dataclass(frozen=True)
class Category:
    category: str
    page: int = 0


@dataclass(frozen=True)
class PickModel:
    model_id: str


@dataclass(frozen=True)
class Choose:
    draft: str
    field: int
    value: int


@dataclass(frozen=True)
class Skip:
    draft: str
    field: int


@dataclass(frozen=True)
class MoreOptions:
    draft: str


@dataclass(frozen=True)
class PickOption:
    draft: str
    field: int


@dataclass(frozen=True)
class Generate:
    draft: str


@dataclass(frozen=True)
class JobAction:
    action: str                 # regen | edit | orig | resend
    job_id: int


@dataclass(frozen=True)
class Lang:
    code: str


Data = Menu | Category | PickModel | Choose | Skip | MoreOptions | PickOption | Generate | JobAction | Lang


def build(data: Data) -> str:
    match data:
        case Menu(action=action):
            out = f"menu:{action}"
        case Category(category=category, page=page):
            out = f"cat:{category}:{page}"
        case PickModel(model_id=model_id):
            out = f"model:{model_id}"
        case Choose(draft=draft, field=field, value=value):
            out = f"ch:{draft}:{field}:{value}"
        case Skip(draft=draft, field=field):
            out = f"sk:{draft}:{field}"
        case MoreOptions(draft=draft):
            out = f"more:{draft}"
        case PickOption(draft=draft, field=field):
            out = f"opt:{draft}:{field}"
        case Generate(draft=draft):
            out = f"go:{draft}"
        case JobAction(action=action, job_id=job_id):
            out = f"job:{action}:{job_id}"
        case Lang(code=code):
            out = f"lang:{code}"
    if len(out.encode()) > MAX_BYTES:
        raise ValueError(f"callback_data over {MAX_BYTES} bytes: {out!r}")
    return out


def parse(raw: str | None) -> Data | None:
    """None for anything we did not build (an old or foreign button)."""
    kind, _, rest = (raw or "").partition(":")
    parts = rest.split(":")
    try:
        match kind, len(parts):
            case "menu", 1 if rest:
                return Menu(rest)
            case "cat", 2:
                return Category(parts[0], int(parts[1]))
            case "model", _ if rest:
                return PickModel(rest)
            case "ch", 3:
                return Choose(parts[0], int(parts[1]), int(parts[2]))
            case "sk", 2:
                return Skip(parts[0], int(parts[1]))
            case "more", 1 if rest:
                return MoreOptions(rest)
            case "opt", 2:
                return PickOption(parts[0], int(parts[1]))
            case "go", 1 if rest:
                return Generate(rest)
            case "job", 2:
                return JobAction(parts[0], int(parts[1]))
            case "lang", 1 if rest:
                return Lang(rest)
    except ValueError:
        return None
    return None
