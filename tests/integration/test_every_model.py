"""Every model users are offered, driven through the wizard as a user would, in English and in
Russian, to a createTask the KIE simulator accepts and a result delivered as the right media
type; and every screen of each walk (each message's text or caption and each button, as sent or
edited) in human words of the user's language: no raw field names or ids, no whole numbers
written as floats, no English on a Russian screen (tests/support/wording_check.py), and the
model called by its one display name, never its id.

The walks run side by side (each in its own chat, WALKS_AT_ONCE at a time) against one
instance, once per module; each walk then gets its own test cases that read its outcome. Not all
420 at once: a walk's every wait would then last as long as the whole module takes, and the
step timeouts would measure the machine's speed instead of the walk."""
from __future__ import annotations

import concurrent.futures
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import reduce
from typing import Any

import pytest

from bot import questions
from config.catalogue import ModelSpec, load_catalogue
from config.pricing import default_pricing
from config.texts import LANGS
from sim import cluster
from sim.kie import KieSim
from sim.telegram import ChatMessage, TelegramSim
from storage.db import Database
from storage.jobs import recent_jobs
from tests.conftest import TEMPLATE, drop_database, with_database
from tests.support.harness import start_instance
from tests.support.waiting import wait_until
from tests.support.wizard_driver import Driver, typed_value
from tests.support.wording_check import WordingCheck

CATALOGUE = load_catalogue()
PRICING = default_pricing()
OFFERED = [m for m in CATALOGUE.offered() if PRICING.offered(m)]
WALKS = [(spec, lang) for spec in OFFERED for lang in LANGS]
WALK_IDS = [f"{spec.id}-{lang}" for spec, lang in WALKS]
MEDIA_KIND = {"photo": "photo", "video": "video", "audio": "audio", "document": "document", "text": None}
SHOWN_BY = ("sendMessage", "editMessageText", "editMessageCaption", "editMessageReplyMarkup", "sendPhoto",
            "sendVideo", "sendAudio", "sendDocument", "sendAnimation", "sendMediaGroup")
CHECK = WordingCheck(CATALOGUE)
WALKS_AT_ONCE = 40


@dataclass(frozen=True)
class Walk:
    """What one simulated user went through: the chat as it ends, what KIE was sent, every text
    the bot showed them, and the words that are theirs or KIE's rather than the bot's."""

    chat: list[ChatMessage]
    task_input: dict[str, Any]
    screens: list[str]
    own: list[str]


def user_of(n: int, lang: str) -> int:
    return 60_000 + 2 * n + LANGS.index(lang)


def screens_of(telegram: TelegramSim, user: int) -> list[str]:
    """Every text and button label the bot sent to or edited in `user`'s chat."""
    shown: list[str] = []
    for method in SHOWN_BY:
        for call in telegram.calls(method):
            params = call.params
            if str(params.get("chat_id")) != str(user):
                continue
            shown += [str(params[k]) for k in ("text", "caption") if params.get(k)]
            shown += [str(item.get("caption")) for item in params.get("media") or [] if isinstance(item, dict)
                      and item.get("caption")]
            keyboard = (params.get("reply_markup") or {}).get("inline_keyboard") or []
            shown += [str(button.get("text")) for row in keyboard for button in row]
    return shown


def theirs(spec: ModelSpec, db: Database, user: int) -> list[str]:
    """What the user typed (the driver's answers) and what KIE's text result said."""
    typed = [typed_value(spec, f) for f in spec.inputs]
    typed += [questions.shown("en", f, [p.strip() for p in typed_value(spec, f).split(",")])
              for f in spec.inputs if f.type == "array-of-string"]
    results = [job.result_text for job in recent_jobs(db, user) if job.result_text]
    return typed + results + [questions.readable_result(lang, r) for r in results for lang in LANGS]


@pytest.fixture(scope="module")
def walks(pg_admin_url: str, template_url: str) -> Iterator[dict[tuple[str, str], Walk | Exception]]:
    name = f"kiebot_m_{uuid.uuid4().hex[:10]}"
    cluster.create_database(pg_admin_url, name, template=TEMPLATE)
    url = with_database(pg_admin_url, name)
    # The walks' own reads share a few connections: the suite runs on several workers against one
    # server, whose max_connections (100 by default) they all share.
    db = Database(url, max_connections=4)
    with KieSim(default_duration_s=0.2) as kie, TelegramSim() as telegram:
        inst = start_instance(url, kie, telegram, KIEBOT_MAX_ACTIVE_JOBS="1")
        wait_until(lambda: inst.runtime.status.active, timeout=10)

        def drive(walk: tuple[int, tuple[ModelSpec, str]]) -> tuple[tuple[str, str], Walk | Exception]:
            n, (spec, lang) = walk
            user = user_of(n // len(LANGS), lang)
            try:
                chat = Driver(telegram, db, spec, user, lang=lang).run()
                task = kie.tasks()[recent_jobs(db, user)[0].kie_task_id or ""]
                return (spec.id, lang), Walk(chat, task["input"], screens_of(telegram, user), theirs(spec, db, user))
            except Exception as exc:  # noqa: BLE001 - reported per walk by its own test cases
                return (spec.id, lang), exc

        with concurrent.futures.ThreadPoolExecutor(WALKS_AT_ONCE) as pool:
            results = dict(pool.map(drive, enumerate(WALKS)))
        yield results
        inst.runtime.stop()
    db.close()
    drop_database(pg_admin_url, name)


def walk_of(walks: dict[tuple[str, str], Walk | Exception], spec: ModelSpec, lang: str) -> Walk:
    outcome = walks[(spec.id, lang)]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


@pytest.mark.parametrize(("spec", "lang"), WALKS, ids=WALK_IDS)
def test_the_wizard_reaches_kie_and_delivers_the_right_media(
        spec: ModelSpec, lang: str, walks: dict[tuple[str, str], Walk | Exception]) -> None:
    walk = walk_of(walks, spec, lang)
    assert spec.validate(walk.task_input) == [], "KIE received an input its schema refuses"
    chat = walk.chat
    delivered = [m for m in chat if m.from_bot and (m.media or "").startswith(MEDIA_KIND[spec.result_kind] or "~")]
    if spec.result_kind == "text":
        assert any(m.from_bot and m.media is None and (m.text or "").startswith(spec.name(lang)) for m in chat)
    else:
        assert delivered, f"no {spec.result_kind} in the chat"


@pytest.mark.parametrize(("spec", "lang"), WALKS, ids=WALK_IDS)
def test_every_screen_of_the_walk_is_in_the_users_words(
        spec: ModelSpec, lang: str, walks: dict[tuple[str, str], Walk | Exception]) -> None:
    walk = walk_of(walks, spec, lang)
    assert walk.screens, "the walk showed nothing"
    problems = sorted({p for screen in walk.screens for p in CHECK.problems(lang, screen, walk.own)})
    assert problems == []
    longest_first = sorted(walk.own, key=len, reverse=True)
    bots_words = [reduce(lambda screen, own: screen.replace(own, ""), longest_first, s) for s in walk.screens]
    assert [s for s in bots_words if spec.id in s] == [], "the model is called by its id, not its name"
    assert any(s.startswith(spec.name(lang)) for s in walk.screens), "the model's one name is never shown"
