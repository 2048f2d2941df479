"""Every offered model, driven through the wizard as a user would, to a createTask the KIE
simulator accepts and a result delivered as the right media type.

All wizards run at once (each in its own chat) against one instance, once per module; each
model then gets its own test case that reads its outcome."""
from __future__ import annotations

import concurrent.futures
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from config.catalogue import ModelSpec, load_catalogue
from sim import cluster
from sim.kie import KieSim
from sim.telegram import TelegramSim
from storage.db import Database
from tests.conftest import TEMPLATE, drop_database, with_database
from tests.support.harness import start_instance
from tests.support.waiting import wait_until
from tests.support.wizard_driver import Driver

OFFERED = load_catalogue().offered()
MEDIA_KIND = {"photo": "photo", "video": "video", "audio": "audio", "document": "document", "text": None}


@pytest.fixture(scope="module")
def outcomes(pg_admin_url: str, template_url: str) -> Iterator[dict[str, Any]]:
    name = f"kiebot_m_{uuid.uuid4().hex[:10]}"
    cluster.create_database(pg_admin_url, name, template=TEMPLATE)
    url = with_database(pg_admin_url, name)
    db = Database(url)
    with KieSim(default_duration_s=0.2) as kie, TelegramSim() as telegram:
        inst = start_instance(url, kie, telegram, KIEBOT_MAX_ACTIVE_JOBS="1")
        wait_until(lambda: inst.runtime.status.active, timeout=10)

        def drive(pair: tuple[int, ModelSpec]) -> tuple[str, Any]:
            n, spec = pair
            try:
                return spec.id, (Driver(telegram, db, spec, 60_000 + n).run(), kie)
            except Exception as exc:  # noqa: BLE001 - reported per model by its own test case
                return spec.id, exc

        with concurrent.futures.ThreadPoolExecutor(len(OFFERED)) as pool:
            results = dict(pool.map(drive, enumerate(OFFERED)))
        yield results
        inst.runtime.stop()
    db.close()
    drop_database(pg_admin_url, name)


@pytest.mark.parametrize("spec", OFFERED, ids=[m.id for m in OFFERED])
def test_the_wizard_reaches_kie_and_delivers_the_right_media(spec: ModelSpec, outcomes: dict[str, Any]) -> None:
    outcome = outcomes[spec.id]
    if isinstance(outcome, Exception):
        raise outcome
    chat, kie = outcome
    [task] = [t for t in kie.tasks().values() if t["model"] == spec.id]
    assert spec.validate(task["input"]) == [], "KIE received an input its schema refuses"
    delivered = [m for m in chat if m.from_bot and (m.media or "").startswith(MEDIA_KIND[spec.result_kind] or "~")]
    if spec.result_kind == "text":
        assert any(m.from_bot and m.media is None and (m.text or "").startswith(spec.name("en")) for m in chat)
    else:
        assert delivered, f"no {spec.result_kind} in the chat"
