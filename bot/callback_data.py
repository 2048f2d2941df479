"""callback_data, built and parsed in one place: short stable strings (≤ 64 bytes) that survive
restarts. Fields and enum values travel as indexes into the catalogue, drafts as short hex ids,
jobs as their ids, and a confirmation's price (what the user agrees to pay, in minor units) as
an integer; anything unparseable is an old or foreign button (buttons made before prices carry
none, and are asked to confirm again)."""
from __future__ import annotations

from dataclasses import dataclass

MAX_BYTES = 64


@dataclass(frozen=True)
class Menu:
    action: str                 # home (a new message) | back (this message becomes the menu) | create


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
    price: int | None = None    # on a confirmation: what the user agrees to pay (minor units)


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
    price: int | None = None    # what the confirmation said it costs (minor units; 0: free)


@dataclass(frozen=True)
class UseExample:
    """"Use this" under an example prompt on a model card."""

    draft: str
    index: int


@dataclass(frozen=True)
class ShowConfirm:
    """Back from More options to the draft's confirmation."""

    draft: str


@dataclass(frozen=True)
class ModelList:
    """A page of /models (or of /models <words>: the words travel with it)."""

    page: int
    words: str = ""


@dataclass(frozen=True)
class JobAction:
    action: str                 # regen | edit | orig | resend | again (Create another)
    job_id: int


@dataclass(frozen=True)
class Lang:
    code: str


@dataclass(frozen=True)
class TopUp:
    """The Top up button: the Stars packages as invoices."""


Data = (Menu | Category | PickModel | Choose | Skip | MoreOptions | PickOption | Generate | JobAction | Lang | TopUp
        | UseExample | ShowConfirm | ModelList)


def build(data: Data) -> str:
    match data:
        case Menu(action=action):
            out = f"menu:{action}"
        case Category(category=category, page=page):
            out = f"cat:{category}:{page}"
        case PickModel(model_id=model_id):
            out = f"model:{model_id}"
        case Choose(draft=draft, field=field, value=value, price=price):
            out = f"ch:{draft}:{field}:{value}" + (f":{price}" if price is not None else "")
        case Skip(draft=draft, field=field):
            out = f"sk:{draft}:{field}"
        case MoreOptions(draft=draft):
            out = f"more:{draft}"
        case PickOption(draft=draft, field=field):
            out = f"opt:{draft}:{field}"
        case Generate(draft=draft, price=price):
            out = f"go:{draft}" + (f":{price}" if price is not None else "")
        case JobAction(action=action, job_id=job_id):
            out = f"job:{action}:{job_id}"
        case Lang(code=code):
            out = f"lang:{code}"
        case TopUp():
            out = "topup"
        case UseExample(draft=draft, index=index):
            out = f"ex:{draft}:{index}"
        case ShowConfirm(draft=draft):
            out = f"cf:{draft}"
        case ModelList(page=page, words=words):
            out = f"ml:{page}" + (f":{words}" if words else "")
    if len(out.encode()) > MAX_BYTES:
        raise ValueError(f"callback_data over {MAX_BYTES} bytes: {out!r}")
    return out


def parse(raw: str | None) -> Data | None:
    """None for anything we did not build (an old or foreign button)."""
    kind, _, rest = (raw or "").partition(":")
    parts = rest.split(":")
    try:
        if kind == "ml":
            page, _, words = rest.partition(":")
            return ModelList(int(page), words)
        match kind, len(parts):
            case "menu", 1 if rest:
                return Menu(rest)
            case "cat", 2:
                return Category(parts[0], int(parts[1]))
            case "model", _ if rest:
                return PickModel(rest)
            case "ch", 3:
                return Choose(parts[0], int(parts[1]), int(parts[2]))
            case "ch", 4:
                return Choose(parts[0], int(parts[1]), int(parts[2]), _price(parts[3]))
            case "sk", 2:
                return Skip(parts[0], int(parts[1]))
            case "more", 1 if rest:
                return MoreOptions(rest)
            case "opt", 2:
                return PickOption(parts[0], int(parts[1]))
            case "go", 1 if rest:
                return Generate(rest)
            case "go", 2:
                return Generate(parts[0], _price(parts[1]))
            case "job", 2:
                return JobAction(parts[0], int(parts[1]))
            case "lang", 1 if rest:
                return Lang(rest)
            case "topup", 1 if not rest:
                return TopUp()
            case "ex", 2:
                return UseExample(parts[0], int(parts[1]))
            case "cf", 1 if rest:
                return ShowConfirm(rest)
    except ValueError:
        return None
    return None


def _price(raw: str) -> int:
    """A price a button carries: minor units, never negative (ValueError: not our button)."""
    price = int(raw)
    if price < 0:
        raise ValueError(raw)
    return price
