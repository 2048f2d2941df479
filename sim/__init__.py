"""Simulators of KIE and the Telegram Bot API: real HTTP servers on 127.0.0.1 for tests and the demo."""
