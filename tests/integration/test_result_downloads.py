"""Result downloads (bot/media.py) go only to KIE's result hosts and the configured KIE hosts.

A result URL may come from a callback body nobody confirmed, so a download must not become a
way into the bot's network: real HTTP against the KIE simulator's result files, an "internal
service" that records whether anything reached it, and a redirector on an allowed host.
"""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from actors.ports import SendOutcome
from bot import media
from bot.sender import classify_send_error
from sim.kie import KieSim
from sim.kie_media import png_bytes

LIMIT = 1024 * 1024


class LocalServer:
    """Records every GET; answers each path from `routes` (status, headers, body), else 200 "secret"."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.paths.append(self.path)
                status, headers, body = server.routes.get(self.path, (200, {}, b"secret"))
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()

    def redirect(self, path: str, to: str, status: int = 302) -> str:
        self.routes[path] = (status, {"Location": to}, b"")
        return f"{self.url}{path}"

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture(scope="module")
def kie_sim() -> Iterator[KieSim]:
    with KieSim(default_duration_s=0.01, rate_limits=False) as sim:
        yield sim


@pytest.fixture
def kie(kie_sim: KieSim) -> KieSim:
    media.allow_result_hosts(kie_sim.url, kie_sim.upload_url)   # what the gateway does with KIE_API_URL/KIE_UPLOAD_URL
    return kie_sim


@pytest.fixture
def internal() -> Iterator[LocalServer]:
    """A service on this machine that is not KIE: nothing may reach it."""
    server = LocalServer()
    yield server
    server.close()


@pytest.fixture
def redirector() -> Iterator[LocalServer]:
    """A server on a configured host (as if it were KIE_UPLOAD_URL) that answers redirects."""
    server = LocalServer()
    media.allow_result_hosts(server.url)
    yield server
    server.close()


def result_url(kie: KieSim) -> str:
    """A real result file on the simulator, as KIE's resultUrls would name it."""
    answer = httpx.post(f"{kie.url}/api/v1/jobs/createTask", headers={"Authorization": f"Bearer {kie.api_key}"},
                        json={"model": "z-image", "input": {"prompt": "fox", "aspect_ratio": "1:1"}}).json()
    task_id = answer["data"]["taskId"]
    kie.complete_now(task_id)
    return str(kie.tasks()[task_id]["resultUrls"][0])


def download(url: str) -> bytes:
    return asyncio.run(media.download(url, LIMIT))


def test_a_result_on_the_configured_kie_host_is_downloaded(kie: KieSim) -> None:
    url = result_url(kie)
    assert download(url) == png_bytes(f"{url.rsplit('/', 1)[-1].split('_')[0]}/0")


@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "ftp://tempfile.aiquickdraw.com/a.png", "gopher://127.0.0.1:70/x", "http:///a.png",
    "https://attacker.invalid/a.png", "https://tempfile.aiquickdraw.com.attacker.invalid/a.png",
    "https://evilredpandaai.co/a.png", "http://169.254.169.254/latest/meta-data/", "http://[::1]:5432/",
    "http://127.0.0.1:notaport/a.png",
])
def test_urls_off_the_allow_list_are_refused_before_any_connection(url: str) -> None:
    with pytest.raises(media.NotAllowed):
        download(url)


def test_a_local_service_on_another_port_of_a_configured_host_is_never_reached(kie: KieSim, internal: LocalServer) -> None:
    with pytest.raises(media.NotAllowed):
        download(f"{internal.url}/admin")
    assert internal.paths == []


def test_a_redirect_to_a_host_off_the_list_is_refused_without_following_it(
        redirector: LocalServer, internal: LocalServer) -> None:
    url = redirector.redirect("/r.png", f"{internal.url}/admin")
    with pytest.raises(media.NotAllowed):
        download(url)
    assert redirector.paths == ["/r.png"] and internal.paths == []


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_an_allowed_result_is_followed(kie: KieSim, redirector: LocalServer, status: int) -> None:
    target = result_url(kie)
    assert download(redirector.redirect("/r.png", target, status)) == download(target)


def test_more_than_a_few_redirects_are_refused(redirector: LocalServer) -> None:
    for hop in range(media.MAX_REDIRECTS + 1):
        redirector.redirect(f"/{hop}", f"/{hop + 1}")
    with pytest.raises(media.NotAllowed):
        download(f"{redirector.url}/0")
    assert redirector.paths == [f"/{hop}" for hop in range(media.MAX_REDIRECTS + 1)]


@pytest.mark.parametrize(("addresses", "allowed"), [
    (["93.184.216.34"], True),
    (["2606:2800:220:1:248:1893:25c8:1946"], True),
    (["127.0.0.1"], False),
    (["10.1.2.3"], False),
    (["192.168.0.10"], False),
    (["169.254.169.254"], False),
    (["::1"], False),
    (["fd00::1"], False),
    (["93.184.216.34", "10.1.2.3"], False),
])
def test_a_kie_result_host_is_refused_when_it_resolves_to_a_private_address(
        monkeypatch: pytest.MonkeyPatch, addresses: list[str], allowed: bool) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        assert host == "tempfile.aiquickdraw.com"
        return addresses

    monkeypatch.setattr(media, "resolve", resolve)
    check: Callable[[], Awaitable[None]] = lambda: media.check_result_url("https://tempfile.aiquickdraw.com/a.png")
    if allowed:
        asyncio.run(check())
    else:
        with pytest.raises(media.NotAllowed):
            asyncio.run(check())


def test_a_refused_download_is_a_rejected_send() -> None:
    assert classify_send_error(media.NotAllowed("attacker.invalid is not a KIE result host")).outcome \
        == SendOutcome.REJECTED
