"""Both simulators in their own process, for scenarios whose pipeline runs in the bench process.

`python -m bench.simhost '<json config>'` starts KieSim and TelegramSim on 127.0.0.1, creates
the chats asked for (each user writes "hi"; those updates are then confirmed with getUpdates so
the bot under test never sees them), prints one JSON line with the URLs and serves until its
stdin closes. The Telegram simulator stamps calls with time.time(), the clock KIE's callback
log uses, so the two can be compared. A tiny control server adds `POST /reset`.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from sim.kie import KieSim
from sim.telegram import TelegramSim


def create_chats(telegram: TelegramSim, chats: list[int]) -> None:
    last = 0
    for chat in chats:
        last = telegram.user_sends(chat, "hi")
    if chats:
        requests.get(f"{telegram.url}/bot{telegram.token}/getUpdates", params={"offset": last + 1, "timeout": 0},
                     timeout=30).raise_for_status()


def main() -> None:
    config: dict[str, Any] = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    kie = KieSim(default_duration_s=float(config.get("kie_duration_s", 0.0)),
                 rate_limits=bool(config.get("kie_rate_limits", False)),
                 balance="100000000").start()
    telegram = TelegramSim(enforce_limits=bool(config.get("telegram_limits", False)), clock=time.time).start()
    chats = [int(c) for c in config.get("chats", [])]
    create_chats(telegram, chats)

    class Control(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass

        def do_POST(self) -> None:  # stdlib naming
            if self.path == "/reset":
                kie.reset()
                telegram.reset()
                create_chats(telegram, chats)
                body = b'{"ok": true}'
                self.send_response(200)
            else:
                body = b'{"ok": false}'
                self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    control = ThreadingHTTPServer(("127.0.0.1", 0), Control)
    control.daemon_threads = True
    threading.Thread(target=control.serve_forever, daemon=True).start()
    print(json.dumps({"kie_url": kie.url, "kie_upload_url": kie.upload_url, "kie_key": kie.api_key,
                      "telegram_url": telegram.url, "telegram_token": telegram.token,
                      "control_url": f"http://127.0.0.1:{control.server_address[1]}"}), flush=True)
    try:
        sys.stdin.read()          # until the bench closes our stdin (or dies)
    finally:
        control.shutdown()
        telegram.stop()
        kie.stop()


if __name__ == "__main__":
    main()
