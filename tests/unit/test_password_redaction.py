"""The database password is one of the secrets the log redaction net masks, in both the form
written in DATABASE_URL and the decoded one; storage error messages mask URL passwords."""
from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from config.settings import Settings
from storage.db import scrub
from telemetry import logs

WRITTEN = "pa%25ss-hunter2"     # as in the URL
DECODED = "pa%ss-hunter2"       # as libpq sends it


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_the_database_password_is_masked_in_log_lines_and_tracebacks(
        restore_logging: None, capfd: pytest.CaptureFixture[str]) -> None:
    settings = Settings.from_env({"TELEGRAM_BOT_TOKEN": "1:x", "KIE_API_KEY": "k",
                                  "DATABASE_URL": f"postgresql://kiebot:{WRITTEN}@db.example:5432/kiebot"})
    logs.configure("DEBUG", "text", "redaction-test", settings.secrets())    # the real set-up, as `kiebot run`
    log = logging.getLogger("test.password")
    log.warning("connecting to %s", settings.database_url)
    log.warning("password is %s", DECODED)
    try:
        raise RuntimeError(f"driver said: bad token {DECODED!r}")
    except RuntimeError:
        log.exception("connection failed")
    err = capfd.readouterr().err
    assert "connecting to" in err and "driver said" in err
    assert "hunter2" not in err


@pytest.mark.parametrize("message", [
    "could not connect to postgresql://kiebot:hunter2-x@db:5432/kiebot",
    "invalid connection option: host=db password=hunter2-x dbname=kiebot",
    "invalid connection option: password = 'hunter2-x y'",
])
def test_storage_error_messages_mask_url_and_parameter_passwords(message: str) -> None:
    assert "hunter2" not in scrub(message)
    assert "***" in scrub(message)
