"""http_gateway: KIE callbacks, the Telegram webhook, /health, /ready and /metrics.

Served on every instance, active or passive. A callback is checked (job exists, per-job token
compared in constant time, optional KIE HMAC) and written to the Postgres inbox before 200 is
answered; the leader's supervisor picks it up. /health never touches the database and never
answers 500. Tokens and secrets are never logged: request lines are logged without queries.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from faults import crashpoint
from kie.records import task_id_of
from storage import inbox
from storage import updates as update_inbox
from storage.db import Database, DatabaseUnavailable
from storage.jobs import get_job
from telemetry.metrics import Metrics

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
HMAC_WINDOW_S = 300
_CALLBACK_PATH = re.compile(r"^/kie/callback/(\d{1,18})$")


@dataclass
class GatewayHooks:
    """What the gateway tells the rest of the instance; all thread-safe."""

    status: Callable[[], dict[str, Any]]          # for /health
    ready: Callable[[], bool]                     # for /ready
    callback_stored: Callable[[int], None]        # wake the local supervisor
    update_stored: Callable[[], None]             # wake the local intake (webhook mode)


class HttpError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


class HttpGateway:
    def __init__(self, host: str, port: int, db: Database, metrics: Metrics, hooks: GatewayHooks, *,
                 instance_id: str, hmac_key: str | None = None, webhook_secret: str | None = None) -> None:
        self.db, self.metrics, self.hooks = db, metrics, hooks
        self.instance_id, self.hmac_key, self.webhook_secret = instance_id, hmac_key, webhook_secret
        gateway = self

        class Handler(_Handler):
            owner = gateway

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="kiebot-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    # --- routes -----------------------------------------------------------------------------
    def kie_callback(self, job_id: int, query: dict[str, list[str]], headers: Any, raw: bytes) -> dict[str, Any]:
        token = (query.get("token") or [""])[0]
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            self.metrics.callbacks.labels("invalid").inc()
            raise HttpError(400, "body is not valid JSON") from None
        if not isinstance(body, dict):
            raise HttpError(400, "body must be a JSON object")
        job = get_job(self.db, job_id)
        if job is None:
            self.metrics.callbacks.labels("unknown_job").inc()
            raise HttpError(404, "no such job")
        if not token or not hmac.compare_digest(token.encode(), job.callback_token.encode()):
            self.metrics.callbacks.labels("forged").inc()
            raise HttpError(403, "token does not match")
        signature_ok = self._check_signature(headers, body) if self.hmac_key else None
        if signature_ok is False:
            self.metrics.callbacks.labels("forged").inc()
            raise HttpError(401, "webhook signature invalid or outside the time window")
        inbox.store_callback(self.db, job_id, body, signature_ok, self.instance_id)
        crashpoint("after_callback_stored")
        self.metrics.callbacks.labels("stored").inc()
        log.info("callback stored for job %s", job_id, extra={"action": "callback_stored", "job_id": job_id})
        self.hooks.callback_stored(job_id)
        return {"code": 200, "msg": "success"}

    def _check_signature(self, headers: Any, body: dict[str, Any]) -> bool:
        assert self.hmac_key is not None
        ts_text, signature = headers.get("X-Webhook-Timestamp"), headers.get("X-Webhook-Signature")
        task_id = task_id_of(body)
        if not ts_text or not signature or not task_id:
            return False
        try:
            ts = int(ts_text)
        except ValueError:
            return False
        if abs(time.time() - ts) > HMAC_WINDOW_S:
            return False
        expected = base64.b64encode(hmac.new(self.hmac_key.encode(), f"{task_id}.{ts}".encode(),
                                             hashlib.sha256).digest()).decode()
        return hmac.compare_digest(expected, signature)

    def telegram_webhook(self, headers: Any, raw: bytes) -> dict[str, Any]:
        given = headers.get("X-Telegram-Bot-Api-Secret-Token") or ""
        if not self.webhook_secret or not hmac.compare_digest(given.encode(), self.webhook_secret.encode()):
            raise HttpError(403, "secret token missing or wrong")
        try:
            body = json.loads(raw)
            update_id = int(body["update_id"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise HttpError(400, "body is not a Telegram update") from None
        update_inbox.store_update(self.db, update_id, body, self.instance_id)
        self.hooks.update_stored()
        return {"ok": True}


class _Handler(BaseHTTPRequestHandler):
    owner: HttpGateway
    protocol_version = "HTTP/1.1"
    server_version = "kiebot"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Request lines without the query string: it carries callback tokens."""
        log.debug("%s %s", self.command, urlsplit(self.path).path, extra={"action": "http_request"})

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        path = urlsplit(self.path).path
        if path == "/health":
            return self._json(200, self.owner.hooks.status())
        if path == "/ready":
            ready = self.owner.hooks.ready()
            return self._json(200 if ready else 503, {"ready": ready})
        if path == "/metrics":
            return self._send(200, self.owner.metrics.render(), "text/plain; version=0.0.4; charset=utf-8")
        self._json(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        parts = urlsplit(self.path)
        try:
            raw = self._body()
            match = _CALLBACK_PATH.match(parts.path)
            if match:
                return self._json(200, self.owner.kie_callback(int(match.group(1)), parse_qs(parts.query),
                                                               self.headers, raw))
            if parts.path == "/telegram/webhook":
                return self._json(200, self.owner.telegram_webhook(self.headers, raw))
            raise HttpError(404, "not found")
        except HttpError as exc:
            log.info("%s %s -> %d %s", self.command, parts.path, exc.status, exc.reason,
                     extra={"action": "http_rejected"})
            self._json(exc.status, {"error": exc.reason})
        except DatabaseUnavailable:
            # Not stored, so not acknowledged: the sender retries.
            self._json(503, {"error": "database unavailable, try again"})
        except Exception:  # noqa: BLE001 - the request boundary: log, answer 500, keep serving
            log.exception("request failed", extra={"action": "http_error"})
            self._json(500, {"error": "internal error"})

    def _body(self) -> bytes:
        length_text = self.headers.get("Content-Length") or "0"
        try:
            length = int(length_text)
        except ValueError:
            raise HttpError(400, "bad Content-Length") from None
        if length < 0 or length > MAX_BODY_BYTES:
            raise HttpError(413, "body too large")
        return self.rfile.read(length)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload, default=str).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
