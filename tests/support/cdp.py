"""Drive headless Chromium from a test over the Chrome DevTools Protocol (CDP).

`Chromium` starts the browser in its own process group and temporary profile and always kills
both on close(); `Page` navigates, evaluates JavaScript, clicks and types like a person (mouse
and keyboard events, not DOM calls) and takes screenshots. The websocket underneath is a minimal
RFC 6455 client (text frames, masking, no extensions), because the venv has no websocket library
and these tests need no more than that.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.support.waiting import wait_until

_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_TEXT, _CLOSE, _PING, _PONG = 0x1, 0x8, 0x9, 0xA


class CdpError(RuntimeError):
    """A DevTools command failed, or the page's JavaScript threw."""


def _xor(data: bytes, mask: bytes) -> bytes:
    """Apply a websocket mask (the same operation masks and unmasks)."""
    repeated = (mask * (len(data) // 4 + 1))[:len(data)]
    masked = int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")
    return masked.to_bytes(len(data), "big")


class WebSocket:
    """A blocking websocket client: text messages, every read bounded by a deadline."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "ws" or not parts.hostname:
            raise ValueError(f"only ws:// URLs are supported, not {url!r}")
        self._sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout)
        self._buffer = bytearray()
        try:
            self._handshake(parts.netloc, parts.path or "/", time.monotonic() + timeout)
        except BaseException:
            self._sock.close()
            raise

    def _handshake(self, host: str, path: str, deadline: float) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        self._sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                            "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        while b"\r\n\r\n" not in self._buffer:
            self._fill(deadline)
        head, _, rest = bytes(self._buffer).partition(b"\r\n\r\n")
        self._buffer = bytearray(rest)
        status, *lines = head.decode("latin-1").split("\r\n")
        headers = {name.strip().lower(): value.strip()
                   for name, _, value in (line.partition(":") for line in lines)}
        accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
        if status.split()[1:2] != ["101"] or headers.get("sec-websocket-accept") != accept:
            raise ConnectionError(f"websocket handshake refused: {status}")

    def send_text(self, text: str) -> None:
        self._send_frame(_TEXT, text.encode())

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        """One final frame; clients must mask what they send."""
        size = len(payload)
        if size < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
        elif size < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
        mask = os.urandom(4)
        self._sock.sendall(header + mask + _xor(payload, mask))

    def recv_text(self, deadline: float) -> str:
        """The next whole message (continuation frames joined); answers pings on the way."""
        parts: list[bytes] = []
        while True:
            first, second = self._read(2, deadline)
            size = second & 0x7F
            if size == 126:
                size = struct.unpack("!H", self._read(2, deadline))[0]
            elif size == 127:
                size = struct.unpack("!Q", self._read(8, deadline))[0]
            mask = self._read(4, deadline) if second & 0x80 else b""
            payload = self._read(size, deadline)
            payload = _xor(payload, mask) if mask else payload
            opcode = first & 0x0F
            if opcode == _CLOSE:
                raise ConnectionError("the browser closed the DevTools websocket")
            if opcode == _PING:
                self._send_frame(_PONG, payload)
            elif opcode != _PONG:
                parts.append(payload)
                if first & 0x80:
                    return b"".join(parts).decode()

    def _read(self, size: int, deadline: float) -> bytes:
        while len(self._buffer) < size:
            self._fill(deadline)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out waiting for the DevTools websocket")
        self._sock.settimeout(remaining)
        chunk = self._sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("the DevTools websocket closed")
        self._buffer += chunk

    def close(self) -> None:
        try:
            self._send_frame(_CLOSE, struct.pack("!H", 1000))
        except OSError:
            pass
        self._sock.close()


class DevTools:
    """CDP over one browser-level websocket: numbered commands, optional flat sessions."""

    def __init__(self, ws_url: str) -> None:
        self._ws = WebSocket(ws_url)
        self._next_id = 0

    def send(self, method: str, params: dict[str, Any] | None = None,
             session_id: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
        """Send a command and return its result; events that arrive meanwhile are skipped."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        self._ws.send_text(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self._ws.recv_text(deadline))
            if reply.get("id") != self._next_id:
                continue
            if "error" in reply:
                raise CdpError(f"{method} failed: {reply['error']}")
            result: dict[str, Any] = reply.get("result", {})
            return result

    def close(self) -> None:
        self._ws.close()


class Page:
    """One browser tab, attached as a flat session."""

    def __init__(self, devtools: DevTools, session_id: str) -> None:
        self._devtools = devtools
        self._session_id = session_id

    def send(self, method: str, params: dict[str, Any] | None = None,
             timeout: float = 10.0) -> dict[str, Any]:
        return self._devtools.send(method, params, self._session_id, timeout)

    def evaluate(self, expression: str, timeout: float = 10.0) -> Any:
        """The JSON value of a JavaScript expression (promises awaited); CdpError if it throws."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, timeout)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            thrown = details.get("exception", {}).get("description") or details.get("text")
            raise CdpError(f"JavaScript threw: {thrown}")
        return result["result"].get("value")

    def navigate(self, url: str, timeout: float = 10.0) -> None:
        """Open `url` and wait until its document has loaded."""
        result = self.send("Page.navigate", {"url": url}, timeout)
        if result.get("errorText"):
            raise CdpError(f"navigating to {url} failed: {result['errorText']}")
        loaded = (f"location.href === new URL({json.dumps(url)}).href"
                  " && document.readyState === 'complete'")
        wait_until(lambda: self.evaluate(loaded), timeout, f"{url} to load", interval=0.02)

    def screenshot(self) -> bytes:
        """PNG bytes of the viewport."""
        return base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"})["data"])

    def click(self, element: str, clicks: int = 1) -> None:
        """Click with the mouse, as a person does: the element the JavaScript expression `element`
        evaluates to is scrolled into view and pressed at its centre (whatever is on top there
        gets the click), `clicks` times in a row (2: a double-click). CdpError if the expression
        finds nothing."""
        centre = self.evaluate(f"""(() => {{
          const node = {element};
          if (!node) return null;
          node.scrollIntoView({{ block: "center" }});
          const box = node.getBoundingClientRect();
          return [box.left + box.width / 2, box.top + box.height / 2];
        }})()""")
        if centre is None:
            raise CdpError(f"nothing to click: {element}")
        x, y = centre
        self.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})
        for count in range(1, clicks + 1):
            for kind in ("mousePressed", "mouseReleased"):
                self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left",
                                                       "clickCount": count})

    def type_text(self, text: str) -> None:
        """Type `text` into the focused element (one input event, as a keyboard's IME commits it)."""
        self.send("Input.insertText", {"text": text})

    def press_enter(self) -> None:
        """Press and release Enter on the focused element."""
        enter = {"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "nativeVirtualKeyCode": 13}
        self.send("Input.dispatchKeyEvent", {"type": "keyDown", "text": "\r", **enter})
        self.send("Input.dispatchKeyEvent", {"type": "keyUp", **enter})


class Chromium:
    """A headless Chromium for one test. Always call close(): it kills the whole process group."""

    def __init__(self, executable: str = "/usr/bin/chromium", timeout: float = 20.0) -> None:
        self._root = Path(tempfile.mkdtemp(prefix="cdp-chromium-"))
        self._log = (self._root / "stderr.log").open("wb")
        self.devtools: DevTools | None = None
        self.process: subprocess.Popen[bytes] | None = None
        try:
            self.process = subprocess.Popen(
                [executable, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", f"--user-data-dir={self._root / 'profile'}",
                 "--remote-debugging-port=0", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log,
                start_new_session=True)
            url = wait_until(self._devtools_url, timeout, "Chromium's DevTools websocket URL", interval=0.02)
            assert url is not None      # wait_until returns a truthy value or fails
            self.devtools = DevTools(url)
        except BaseException:
            self.close()
            raise

    def _devtools_url(self) -> str | None:
        """The ws:// URL Chromium prints on stderr once DevTools listens."""
        log = (self._root / "stderr.log").read_text(errors="replace")
        found = re.search(r"DevTools listening on (ws://\S+)", log)
        if found is None and self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"Chromium exited with {self.process.returncode}:\n{log[-2000:]}")
        return found.group(1) if found else None

    def new_page(self, width: int = 1000, height: int = 700) -> Page:
        """A fresh tab with a fixed viewport, attached so commands can address it."""
        assert self.devtools is not None
        target = self.devtools.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.devtools.send("Target.attachToTarget", {"targetId": target,
                                                               "flatten": True})["sessionId"]
        page = Page(self.devtools, session)
        page.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                         "deviceScaleFactor": 1, "mobile": False})
        return page

    def close(self) -> None:
        """Close the websocket, TERM then KILL the browser's process group, delete the profile."""
        if self.devtools is not None:
            self.devtools.close()
            self.devtools = None
        if self.process is not None:
            self._signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self._signal_group(signal.SIGKILL)  # renderers that outlived the browser, if any
            self.process.wait(timeout=5)
            self.process = None
        self._log.close()
        shutil.rmtree(self._root, ignore_errors=True)

    def _signal_group(self, signum: int) -> None:
        assert self.process is not None
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass
