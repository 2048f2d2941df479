"""No secret (bot token, KIE key, callback tokens) reaches a log line, even at DEBUG, through
the real logging set-up with its redaction safety net switched off."""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator

import pytest
import requests

from sim.kie import KieSim
from sim.kie_tasks import Fate
from sim.telegram import TelegramSim
from storage.db import Database
from storage.jobs import recent_jobs
from telemetry import logs
from tests.support.harness import Instance
from tests.support.waiting import wait_until

USER = 4501


@pytest.fixture
def production_logging(capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    logs.configure("DEBUG", "text", "secrets-test", secrets=[])     # no redaction: the code itself must be clean
    yield
    root.handlers[:], _ = saved[0], root.setLevel(saved[1])


def test_no_secret_reaches_the_logs(production_logging: None, capfd: pytest.CaptureFixture[str],
                                    instance_factory: Callable[..., Instance], telegram: TelegramSim,
                                    kie: KieSim, db: Database) -> None:
    inst = instance_factory()
    wait_until(lambda: inst.runtime.status.active, timeout=10)
    telegram.user_sends(USER, "/imagine a secret garden")
    wait_until(lambda: [j for j in recent_jobs(db, USER) if j.terminal], timeout=20)
    [job] = recent_jobs(db, USER)
    requests.post(f"{inst.url}/kie/callback/{job.id}", params={"token": job.callback_token + "x"}, data=b"{}",
                  timeout=5)
    requests.post(f"{inst.url}/kie/callback/{job.id}", params={"token": job.callback_token},
                  data=json.dumps({"data": {"taskId": job.kie_task_id}}), timeout=5)
    kie.force_next("createTask", 1, 401, "You do not have access permissions")
    kie.script_next(Fate(outcome="fail", fail_msg="no"))
    telegram.fail_next("sendPhoto", 1, status=400, description="Bad Request: wrong file identifier")
    telegram.user_sends(USER, "/imagine another one")
    wait_until(lambda: len([j for j in recent_jobs(db, USER) if j.terminal]) == 2, timeout=20)
    out = capfd.readouterr()
    lines = [line for line in (out.out + out.err).splitlines() if " sim." not in line]
    assert any("job" in line for line in lines), "the logs were not captured"
    secrets = {"bot token": telegram.token, "KIE key": kie.api_key,
               **{f"callback token {j.id}": j.callback_token for j in recent_jobs(db, USER)}}
    leaks = [(name, line) for line in lines for name, secret in secrets.items() if secret in line]
    assert leaks == []
