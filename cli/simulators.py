"""`kiebot sim`: both simulators on 127.0.0.1, their URLs printed, until Ctrl-C."""
from __future__ import annotations

import signal
import threading

from sim.kie import KieSim
from sim.telegram import TelegramSim


def serve_simulators(kie_port: int = 0, telegram_port: int = 0) -> int:
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    with KieSim(port=kie_port, default_duration_s=2.0) as kie, TelegramSim(port=telegram_port) as telegram:
        print(f"KIE_API_URL={kie.url}")
        print(f"KIE_UPLOAD_URL={kie.upload_url}")
        print(f"KIE_API_KEY={kie.api_key}")
        print(f"TELEGRAM_API_URL={telegram.url}")
        print(f"TELEGRAM_BOT_TOKEN={telegram.token}")
        print(f"Chat with the bot in a browser: {telegram.url}/web/")
        print("Simulators running; export the lines above and start `kiebot run`. Ctrl-C stops.", flush=True)
        done.wait()
    return 0
