"""A faithful local fake of KIE.ai's market job API, over real HTTP on 127.0.0.1.

Owns `KieSim`: the API host (createTask, recordInfo, credit, download-url, the result files and
the `/__sim/...` control API), auth, the envelope and its error-delivery modes, validation through
the shared model catalogue, credits (each task charged by the catalogue's price rule, or a price
set per model to stage a drift), rate limits, forced replies and the call log. Task lifecycle
and callbacks live in `sim.kie_tasks`, file bytes in `sim.kie_media`, the upload host in `sim.kie_upload`.
"""
from __future__ import annotations

import collections
import hmac
import json
import random
import threading
import time
from decimal import Decimal
from typing import Any

from config.catalogue import Catalogue, load_catalogue
from sim.kie_http import FORCE_MODES, Forced, Reply, Request, Server, fault_reply, make_handler
from sim.kie_tasks import CallbackSender, Fate, Scheduler, Task, TaskBook, WorkerPool, number
from sim.kie_upload import UploadHost

__all__ = ["Fate", "KieSim", "Reply", "Request"]

DEFAULT_PRICE = Decimal(1)  # credits per task, for catalogue models without a price rule
# The account's starting credits: enough to run every offered model once at its catalogue price
# (about 8,000 credits) many times over; a test of 402 sets its own balance.
DEFAULT_BALANCE = "100000"
DOWNLOAD_URL_TTL_S = 20 * 60
# (max calls, window in seconds) per API key, as KIE documents them.
RATE_LIMITS = {"createTask": (20, 10.0), "recordInfo": (10, 1.0)}
ERROR_MODES = ("http200", "http", "mixed")
BILLING_MODES = ("on_success", "on_create")
DEFAULT_MSG = {
    200: "success", 400: "Bad request", 401: "You do not have access permissions",
    402: "Credits insufficient", 404: "Not found", 408: "Request timeout", 422: "Validation error",
    429: "Rate limit exceeded, please try again later", 433: "Sub-key usage exceeds limit",
    455: "Service unavailable: the system is under maintenance", 500: "Server error",
    501: "Generation failed", 505: "Feature disabled",
}
API_ROUTES = {  # (method, path) -> endpoint name used by force_next and calls()
    ("POST", "/api/v1/jobs/createTask"): "createTask",
    ("GET", "/api/v1/jobs/recordInfo"): "recordInfo",
    ("GET", "/api/v1/chat/credit"): "credit",
    ("POST", "/api/v1/common/download-url"): "download-url",
}


class KieSim:
    """The fake KIE: two HTTP servers (API and upload host) plus Python and HTTP control."""

    def __init__(self, api_key: str = "sim-kie-key", host: str = "127.0.0.1", port: int = 0,
                 upload_port: int = 0, seed: int = 0, default_duration_s: float = 0.3,
                 balance: Decimal | str = DEFAULT_BALANCE, error_mode: str = "http200",
                 hmac_key: str | None = None, result_ttl_s: float = 24 * 3600,
                 upload_ttl_s: float = 3 * 24 * 3600, server_error_rate: float = 0.0,
                 rate_limits: bool = True, *, callback_timeout_s: float = 15.0,
                 callback_retries: int = 3, callback_backoff_s: tuple[float, ...] = (0.2, 0.4, 0.8),
                 duration_by_kind: dict[str, float] | None = None, billing: str = "on_success",
                 download_url_ttl_s: float = DOWNLOAD_URL_TTL_S,
                 catalogue: Catalogue | None = None, response_delay_s: float = 0.0,
                 legacy_credit_fields: bool = False) -> None:
        """response_delay_s: every API answer waits this long (a slow network, or a busy KIE).
        legacy_credit_fields: records and callbacks carry `consumeCredits` + `remainedCredits`
        (older KIE pages) instead of `creditsConsumed`."""
        if error_mode not in ERROR_MODES:
            raise ValueError(f"error_mode must be one of {ERROR_MODES}")
        if billing not in BILLING_MODES:
            raise ValueError(f"billing must be one of {BILLING_MODES}")
        self.api_key = api_key
        self.host, self._port, self._upload_port = host, port, upload_port
        self.seed = seed
        self.error_mode = error_mode
        self.server_error_rate = server_error_rate
        self.rate_limits = rate_limits
        self.billing = billing
        self.download_url_ttl_s = download_url_ttl_s
        self.response_delay_s = response_delay_s
        self.catalogue = catalogue or load_catalogue()
        self._initial_balance = Decimal(str(balance))
        self._initial_legacy_credit_fields = legacy_credit_fields
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._epoch = 0
        self._in_flight = 0
        self._scheduler = Scheduler()
        self._pool = WorkerPool()
        self.sender = CallbackSender(self._scheduler, self._pool, self._record_attempt, lambda: self._epoch,
                                     hmac_key, callback_timeout_s, tuple(callback_backoff_s), callback_retries)
        self.book = TaskBook(self._scheduler, self.sender, seed, default_duration_s, duration_by_kind,
                             result_ttl_s, self._on_success, self.balance)
        self.uploads = UploadHost(self, upload_ttl_s)
        # Ids outlive reset(), as KIE's never repeat: a bot's database may still hold the ids
        # handed out before a reset (jobs.kie_task_id is unique), and so may its download links.
        self._id_rng = random.Random(f"{self.seed}-ids")
        self._token_rng = random.Random(f"{self.seed}-tokens")
        self._servers: list[Server] = []
        self.url = ""
        self.upload_url = ""
        self._reset_state()

    # ----- lifecycle -------------------------------------------------------------------------

    def start(self) -> KieSim:
        """Bind both servers (port 0 = any free port) and start the clock and callback workers."""
        if self._servers:
            return self
        api = Server((self.host, self._port), make_handler(self._route))
        up = Server((self.host, self._upload_port), make_handler(self.uploads.route))
        self._servers = [api, up]
        self.url = f"http://{self.host}:{api.server_address[1]}"
        self.upload_url = f"http://{self.host}:{up.server_address[1]}"
        self.book.base_url = self.url
        for name, server in (("api", api), ("upload", up)):
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01},
                             name=f"kie-sim-{name}", daemon=True).start()
        self._scheduler.start()
        self._pool.start()
        return self

    def stop(self) -> None:
        """Close both servers and stop the clock; pending callbacks are dropped."""
        servers, self._servers = self._servers, []
        for server in servers:
            server.shutdown()
            server.server_close()
        self._scheduler.stop()
        self._pool.stop()
        with self._lock:
            self._epoch += 1

    def __enter__(self) -> KieSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _reset_state(self) -> None:
        with self._lock:
            self._balance = self._initial_balance
            self._prices: dict[str, Decimal] = {}
            self.legacy_credit_fields = self._initial_legacy_credit_fields
            self._maintenance = False
            self._next_fates: collections.deque[Fate] = collections.deque()
            self._prompt_fates: list[tuple[str, Fate]] = []
            self._forced: dict[str, collections.deque[Forced]] = collections.defaultdict(collections.deque)
            self._calls: list[dict[str, Any]] = []
            self._peak_in_flight = 0
            self._attempts: list[dict[str, Any]] = []
            self._windows: dict[tuple[str, str], collections.deque[float]] = collections.defaultdict(collections.deque)
            self._download_tokens: dict[str, tuple[str, float]] = {}
            self._error_rng = random.Random(f"{self.seed}-errors")
            self._mode_rng = random.Random(f"{self.seed}-mode")

    def reset(self) -> None:
        """Forget every task, script, forced reply, call, callback, upload and set price; restore
        the balance and the credit field spelling.
        Task ids, file ids and download tokens keep coming from where they were: none repeats."""
        with self._lock:
            self._epoch += 1
        self._scheduler.clear()
        self.book.reset()
        self.uploads.reset()
        self._reset_state()

    # ----- scripting and inspection -------------------------------------------------------------

    def script_next(self, fate: Fate, count: int = 1) -> None:
        """The next `count` created tasks get `fate` (first in, first out; before prompt scripts)."""
        with self._lock:
            self._next_fates.extend([fate] * count)

    def script_prompt(self, keyword: str, fate: Fate) -> None:
        """Any task whose input.prompt contains `keyword` (case-insensitive) gets `fate`."""
        with self._lock:
            self._prompt_fates.append((keyword.lower(), fate))

    def force_next(self, endpoint: str, n: int, code: int, msg: str = "", *, mode: str = "envelope",
                   body: str = "") -> None:
        """The next `n` calls to `endpoint` answer before any other check (nothing is created):
        "envelope": KIE's {code,msg} (the HTTP status per error_mode); "html": a proxy's HTML
        error page with HTTP status `code`; "empty": HTTP `code` and no body; "raw": HTTP `code`
        and `body` as given (e.g. "[]", '{"code": 200}', half a JSON object); "truncated": a
        success envelope whose connection closes halfway through; "reset": the connection is
        reset after the request was read, with no answer."""
        if mode not in FORCE_MODES:
            raise ValueError(f"mode must be one of {FORCE_MODES}")
        forced = Forced(code, msg or DEFAULT_MSG.get(code, "error"), mode, body)
        with self._lock:
            self._forced[endpoint].extend([forced] * n)

    def set_maintenance(self, on: bool) -> None:
        with self._lock:
            self._maintenance = bool(on)

    def set_balance(self, credits: Decimal | str | int | float) -> None:
        with self._lock:
            self._balance = Decimal(str(credits))

    def balance(self) -> Decimal:
        with self._lock:
            return self._balance

    def set_price(self, model_id: str, credits: Decimal | str | int | None) -> None:
        """Charge every later task of `model_id` exactly `credits`, whatever its input (KIE
        changed its price: what a drift report must notice); None goes back to the price rule."""
        if self.catalogue.get(model_id) is None:
            raise ValueError(f"{model_id!r} is not a model of the catalogue")
        with self._lock:
            if credits is None:
                self._prices.pop(model_id, None)
            else:
                amount = Decimal(str(credits))
                if not amount.is_finite() or amount < 0:
                    raise ValueError(f"a price must be a number of credits >= 0, not {credits!r}")
                self._prices[model_id] = amount

    def price_for(self, model_id: str, given: dict[str, Any]) -> Decimal:
        """What a task of `model_id` with input `given` is charged: the price set for the model,
        else the catalogue's price rule, else DEFAULT_PRICE."""
        with self._lock:
            if model_id in self._prices:
                return self._prices[model_id]
        spec = self.catalogue.get(model_id)
        if spec is None or spec.price is None:
            return DEFAULT_PRICE
        return spec.price.kie_credits(given)

    def set_legacy_credit_fields(self, on: bool) -> None:
        """Later tasks report `consumeCredits` + `remainedCredits` (on) or `creditsConsumed` (off)."""
        with self._lock:
            self.legacy_credit_fields = bool(on)

    def tasks(self) -> dict[str, dict[str, Any]]:
        return self.book.summaries()

    def calls(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(c) for c in self._calls if endpoint is None or c["endpoint"] == endpoint]

    def callback_attempts(self, task_id: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(a) for a in self._attempts if task_id is None or a["task_id"] == task_id]

    def wait_for_callbacks(self, count: int, timeout: float = 5.0, task_id: str | None = None) -> list[dict[str, Any]]:
        """Block until at least `count` attempts are recorded (for `task_id`); TimeoutError if not."""
        def matching() -> list[dict[str, Any]]:
            return [a for a in self._attempts if task_id is None or a["task_id"] == task_id]
        with self._cond:
            if not self._cond.wait_for(lambda: len(matching()) >= count, timeout=timeout):
                raise TimeoutError(f"{len(matching())} of {count} callback attempts after {timeout}s")
            return [dict(a) for a in matching()]

    def complete_now(self, task_id: str) -> None:
        self.book.complete_now(task_id)

    def _record_attempt(self, entry: dict[str, Any]) -> None:
        with self._cond:
            self._attempts.append(entry)
            self._cond.notify_all()

    def _on_success(self, task: Task) -> None:
        if self.billing == "on_success":
            with self._lock:
                self._balance -= task.price

    # ----- envelope and guards (shared with the upload host) ------------------------------------

    def envelope(self, code: int, msg: str, data: Any = None, extra: dict[str, Any] | None = None) -> Reply:
        """The {code,msg,data} body; the HTTP status follows error_mode."""
        body = dict(extra or {})
        body.update(code=code, msg=msg, data=data)
        status = 200
        if code != 200 and 100 <= code <= 599:
            if self.error_mode == "http":
                status = code
            elif self.error_mode == "mixed":
                with self._lock:
                    status = code if self._mode_rng.random() < 0.5 else 200
        return Reply(status, json.dumps(body).encode(), code=code)

    @staticmethod
    def raw_reply(status: int, body: bytes, content_type: str) -> Reply:
        """A non-envelope reply (file bytes or a bare 404)."""
        return Reply(status, body, content_type, code=status)

    def guard(self, endpoint: str, req: Request, extra: dict[str, Any] | None = None) -> Reply | None:
        """The checks every API call goes through, in order: forced reply, auth, maintenance,
        rate limit, random server error. None means the call may proceed."""
        with self._lock:
            forced = self._forced.get(endpoint)
            if forced:
                return self._forced_reply(forced.popleft(), extra)
        auth = req.headers.get("authorization", "")
        if not hmac.compare_digest(auth.encode(), f"Bearer {self.api_key}".encode()):
            return self.envelope(401, DEFAULT_MSG[401], None, extra)
        with self._lock:
            if self._maintenance:
                return self.envelope(455, DEFAULT_MSG[455], None, extra)
            if self.rate_limits and endpoint in RATE_LIMITS:
                limit, window = RATE_LIMITS[endpoint]
                stamps = self._windows[(self.api_key, endpoint)]
                now = time.monotonic()
                while stamps and now - stamps[0] >= window:
                    stamps.popleft()
                if len(stamps) >= limit:
                    return self.envelope(429, DEFAULT_MSG[429], None, extra)
                stamps.append(now)
            if self.server_error_rate and self._error_rng.random() < self.server_error_rate:
                return self.envelope(500, DEFAULT_MSG[500], None, extra)
        return None

    def _forced_reply(self, forced: Forced, extra: dict[str, Any] | None) -> Reply:
        if forced.mode == "envelope":
            return self.envelope(forced.code, forced.msg, None, extra)
        if forced.mode == "truncated":
            whole = self.envelope(200, "success", {"taskId": "0" * 32, "note": "x" * 64}, extra)
            return Reply(200, whole.body, code=200, abort="truncated")
        return fault_reply(forced)

    def log_call(self, endpoint: str, req: Request, reply: Reply) -> None:
        logged = req.logged_body if req.logged_body is not None else req.json()
        with self._lock:
            self._calls.append({"endpoint": endpoint, "method": req.method, "path": req.path,
                                "query": dict(req.query), "body": logged, "code": reply.code,
                                "http_status": reply.status, "at": time.time()})

    # ----- the API host -------------------------------------------------------------------------

    def _route(self, req: Request) -> Reply:
        if req.path.startswith("/__sim/"):
            return self._admin(req)
        if req.method in ("GET", "HEAD") and req.path.startswith(("/files/", "/dl/")):
            reply = self._file(req.path)
            self.log_call("files", req, reply)
            return reply
        endpoint = API_ROUTES.get((req.method, req.path))
        if endpoint is None:
            known = any(path == req.path for _, path in API_ROUTES)
            reply = self.envelope(405, "Method not allowed") if known else self.envelope(404, "Not Found")
        else:
            reply = self._answer(endpoint, req)
        self.log_call(endpoint or "unknown", req, reply)
        return reply

    def _answer(self, endpoint: str, req: Request) -> Reply:
        """One API call, counted while it is being answered."""
        with self._lock:
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        try:
            if self.response_delay_s:
                time.sleep(self.response_delay_s)
            return self.guard(endpoint, req) or self._api(endpoint, req)
        finally:
            with self._lock:
                self._in_flight -= 1

    @property
    def peak_in_flight(self) -> int:
        """The most API calls this host was answering at one time (since start or reset)."""
        return self._peak_in_flight

    def _api(self, endpoint: str, req: Request) -> Reply:
        if endpoint == "createTask":
            return self._create_task(req)
        if endpoint == "recordInfo":
            task_id = req.query.get("taskId", "")
            if not task_id:
                return self.envelope(400, "taskId parameter is required")
            data = self.book.record(task_id)
            return self.envelope(200, "success", data) if data else self.envelope(422, "recordInfo is null")
        if endpoint == "credit":
            return self.envelope(200, "success", number(self.balance()))
        return self._download_url(req)

    def _create_task(self, req: Request) -> Reply:
        body = req.json()
        if not isinstance(body, dict):
            return self.envelope(400, "The request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return self.envelope(422, "model is required")
        spec = self.catalogue.get(model)
        if spec is None:
            return self.envelope(422, "The page does not exist or is not published")
        given = body.get("input")
        if given is None:
            return self.envelope(422, "input is required")
        callback_url = body.get("callBackUrl")
        if callback_url is not None and not isinstance(callback_url, str):
            return self.envelope(422, "callBackUrl must be a string")
        problems = spec.validate(given)
        if problems:
            return self.envelope(422, "; ".join(problems))
        price = self.price_for(model, given)
        with self._lock:
            if self._balance < price:
                return self.envelope(402, DEFAULT_MSG[402])
            if self.billing == "on_create":
                self._balance -= price
            fate = self._fate_for(given)
            task_id = self._new_task_id()
            legacy = self.legacy_credit_fields
        request: dict[str, Any] = {"model": model}
        if callback_url is not None:
            request["callBackUrl"] = callback_url
        request["input"] = given
        param = json.dumps(request, ensure_ascii=False, separators=(",", ":"))
        # May complete the task and deliver an `early` callback before we answer.
        self.book.create(task_id, model, spec.kind, given, callback_url, param, fate, price,
                         legacy_credit_fields=legacy)
        return self.envelope(200, "success", {"taskId": task_id})

    def _fate_for(self, given: dict[str, Any]) -> Fate:
        if self._next_fates:
            return self._next_fates.popleft()
        prompt = str(given.get("prompt") or "").lower()
        for keyword, fate in self._prompt_fates:
            if keyword in prompt:
                return fate
        return Fate()

    def _new_task_id(self) -> str:
        while True:
            task_id = f"{self._id_rng.getrandbits(128):032x}"
            if task_id not in self.book.tasks:
                return task_id

    def _download_url(self, req: Request) -> Reply:
        body = req.json()
        url = body.get("url") if isinstance(body, dict) else None
        if not isinstance(url, str) or not url:
            return self.envelope(400, "url is required")
        prefix = f"{self.url}/files/"
        name = url[len(prefix):].split("?", 1)[0] if url.startswith(prefix) else ""
        if not name or self.book.file(name, ignore_expiry=True) is None:
            return self.envelope(422, "The URL is not a file generated by KIE")
        with self._lock:
            token = f"{self._token_rng.getrandbits(96):024x}"
            self._download_tokens[token] = (name, time.monotonic() + self.download_url_ttl_s)
        return self.envelope(200, "success", f"{self.url}/dl/{token}/{name}")

    def _file(self, path: str) -> Reply:
        """A result file; a download-url link serves it for 20 min even after the result expired."""
        found = None
        if path.startswith("/files/"):
            found = self.book.file(path[len("/files/"):])
        else:
            token, _, name = path[len("/dl/"):].partition("/")
            with self._lock:
                entry = self._download_tokens.get(token)
            if entry and entry[0] == name and time.monotonic() < entry[1]:
                found = self.book.file(name, ignore_expiry=True)
        if found is None:
            return self.raw_reply(404, b"Not Found", "text/plain")
        ctype, data = found
        return self.raw_reply(200, data, ctype)

    # ----- the control API ----------------------------------------------------------------------

    def _admin(self, req: Request) -> Reply:
        """`/__sim/...` for other processes: script, force, calls, callbacks, tasks, reset, balance,
        price (POST {"model", "credits"}; credits null goes back to the rule), legacy_credit_fields
        (POST {"on"}), and more."""
        def ok(payload: Any = None) -> Reply:
            return Reply(200, json.dumps({"ok": True, "result": payload}).encode())

        action = req.path[len("/__sim/"):].strip("/")
        body = req.json() if req.method == "POST" else None
        body = body if isinstance(body, dict) else {}
        try:
            if action == "tasks":
                return ok(self.tasks())
            if action == "calls":
                return ok(self.calls(req.query.get("endpoint") or None))
            if action == "callbacks":
                return ok(self.callback_attempts(req.query.get("task_id") or None))
            if action == "balance" and req.method == "GET":
                return ok(number(self.balance()))
            if req.method != "POST":
                return Reply(405, json.dumps({"ok": False, "error": "use POST"}).encode())
            if action == "script":
                fate = Fate.from_json(body.get("fate") or {})
                if body.get("keyword"):
                    self.script_prompt(str(body["keyword"]), fate)
                else:
                    self.script_next(fate, int(body.get("count", 1)))
                return ok()
            if action == "force":
                mode = str(body.get("mode") or "envelope")
                code = int(body["code"]) if mode not in ("truncated", "reset") else int(body.get("code", 200))
                self.force_next(str(body["endpoint"]), int(body.get("n", 1)), code, str(body.get("msg") or ""),
                                mode=mode, body=str(body.get("body") or ""))
                return ok()
            if action == "reset":
                self.reset()
                return ok()
            if action == "maintenance":
                self.set_maintenance(bool(body.get("on", True)))
                return ok()
            if action == "balance":
                self.set_balance(str(body["credits"]))
                return ok(number(self.balance()))
            if action == "price":
                amount = body.get("credits")
                self.set_price(str(body["model"]), None if amount is None else str(amount))
                return ok()
            if action == "legacy_credit_fields":
                self.set_legacy_credit_fields(bool(body.get("on", True)))
                return ok()
            if action == "complete":
                self.complete_now(str(body["task_id"]))
                return ok()
        except (KeyError, ValueError, TypeError) as exc:
            return Reply(400, json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}).encode())
        return Reply(404, json.dumps({"ok": False, "error": f"no control action {action!r}"}).encode())


def main(argv: list[str] | None = None) -> None:
    """Run the sim as its own process (`python -m sim.kie`), e.g. for the demo; Ctrl-C stops it."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-key", default="sim-kie-key")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--upload-port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--duration", type=float, default=3.0, help="default seconds to terminal for images")
    parser.add_argument("--balance", default=DEFAULT_BALANCE)
    parser.add_argument("--error-mode", choices=ERROR_MODES, default="http200")
    parser.add_argument("--hmac-key", default=None)
    args = parser.parse_args(argv)
    sim = KieSim(api_key=args.api_key, port=args.port, upload_port=args.upload_port, seed=args.seed,
                 default_duration_s=args.duration, balance=args.balance, error_mode=args.error_mode,
                 hmac_key=args.hmac_key).start()
    print(json.dumps({"KIE_API_URL": sim.url, "KIE_UPLOAD_URL": sim.upload_url}), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
