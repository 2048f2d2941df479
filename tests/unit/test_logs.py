"""Log lines: JSON carries the action and job id; the redaction net masks configured secrets."""
from __future__ import annotations

import io
import json
import logging

from telemetry.logs import JsonFormatter, RedactSecrets


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("actors.job", logging.INFO, __file__, 1, message, args, None)
    rec.__dict__.update(extra)
    return rec


def test_json_lines_carry_the_action_and_the_job_id() -> None:
    line = JsonFormatter("inst-1").format(record("job %s delivered", 7, action="delivered", job_id=7))
    entry = json.loads(line)
    assert (entry["message"], entry["action"], entry["job_id"], entry["instance"]) == ("job 7 delivered", "delivered", 7, "inst-1")


def test_configured_secrets_are_masked_even_in_arguments() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets(["123456:SECRET-token", "kie-key-999"]))
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    logger.warning("calling %s with %s", "https://x/bot123456:SECRET-token/getMe", "kie-key-999")
    logger.removeHandler(handler)
    assert "SECRET" not in stream.getvalue() and "kie-key-999" not in stream.getvalue()
    assert "***" in stream.getvalue()
