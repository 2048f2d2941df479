"""Sending results by media type, URL first: when Telegram will not fetch a URL (or it is too
big for URL sending) the bytes are downloaded and uploaded instead; past the upload limit the
caller gets `TooLarge` and sends a link. One async implementation, used by handlers directly
and by the actors through bot/sender.py. A result's first message may reply to the request
(`reply`, made by bot/sender.py group_reply); whichever way the file goes, the reply goes with it.

Result URLs can come from a callback body nobody confirmed (KIE_CONFIRM_CALLBACKS=false), so a
download never goes anywhere but KIE's result hosts and the configured KIE hosts
(`allow_result_hosts`, host and port), follows at most MAX_REDIRECTS redirects, each checked the same way, and
never reaches a private address other than a configured host's; anything else is `NotAllowed`.
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx
from telegram import (
    Bot,
    InlineKeyboardMarkup,
    InputFile,
    InputMediaAudio,
    InputMediaDocument,
    InputMediaPhoto,
    InputMediaVideo,
    Message,
    ReplyKeyboardMarkup,
    ReplyParameters,
)
from telegram.constants import ChatAction
from telegram.error import BadRequest

from bot.limits import fit

UPLOAD_LIMIT_BYTES = {"photo": 10 * 1024 * 1024}
DEFAULT_UPLOAD_LIMIT_BYTES = 50 * 1024 * 1024
DOWNLOAD_TIMEOUT_S = 60.0
MAX_REDIRECTS = 3
# Where KIE's results are served from (reference/kie-api.md §3.4); a leading dot allows subdomains.
KIE_RESULT_HOSTS = ("tempfile.aiquickdraw.com", "file.aiquickdraw.com", ".redpandaai.co")
DEFAULT_PORTS = {"http": 80, "https": 443}
ALBUM_MAX = 10
_URL_REFUSED = ("failed to get http url content", "wrong type of the web page content", "wrong file identifier",
                "wrong remote file", "webpage_media_empty", "webpage_curl_failed", "file is too big")
_INPUT_MEDIA = {"photo": InputMediaPhoto, "video": InputMediaVideo, "audio": InputMediaAudio,
                "document": InputMediaDocument}
Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | None
UPLOAD_ACTION = {"photo": ChatAction.UPLOAD_PHOTO, "video": ChatAction.UPLOAD_VIDEO, "audio": ChatAction.UPLOAD_VOICE}


class TooLarge(Exception):
    """The file is bigger than Telegram lets a bot upload."""


class NotAllowed(httpx.HTTPError):
    """The result URL is not one we download from: not http(s), a host off the allow-list, a
    private address, or too many redirects. An httpx.HTTPError, so callers that already treat a
    failed download as "rejected" (bot/sender.py classify_send_error) treat this one the same."""


_configured: set[tuple[str, int]] = set()
_configured_lock = threading.Lock()


def allow_result_hosts(*urls: str) -> None:
    """Also download from the host and port of each of these URLs (KIE_API_URL and
    KIE_UPLOAD_URL: the simulators serve results there), even on a private address. Called at
    start-up; adding the same URL again changes nothing."""
    with _configured_lock:
        _configured.update(filter(None, (_host_port(url) for url in urls)))


def forget_result_hosts() -> None:
    """Forget every host allowed by allow_result_hosts: for a process that runs several
    instances one after another (the tests), so that one's simulator ports do not stay
    allowed for the next."""
    with _configured_lock:
        _configured.clear()


def _host_port(url: str) -> tuple[str, int] | None:
    """(host, port) of an http(s) URL, the port filled in from the scheme; None if it has neither."""
    parts = urlsplit(url)
    try:
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:              # a port that is not a number
        return None
    host = (parts.hostname or "").lower().rstrip(".")
    return (host, port) if host and port and parts.scheme in DEFAULT_PORTS else None


def _on_kie_list(host: str) -> bool:
    return any(host == allowed or (allowed.startswith(".") and host.endswith(allowed))
               for allowed in KIE_RESULT_HOSTS)


async def check_result_url(url: str) -> None:
    """Raise NotAllowed unless `url` may be downloaded: http(s), a configured host, or one of
    KIE's result hosts that resolves only to public addresses."""
    target = _host_port(url)
    if target is None:
        raise NotAllowed("only http(s) result URLs are downloaded")
    with _configured_lock:
        if target in _configured:
            return
    host, port = target
    if not _on_kie_list(host):
        raise NotAllowed(f"{host} is not a KIE result host")
    for address in await resolve(host, port):
        if not ipaddress.ip_address(address.split("%", 1)[0]).is_global:
            raise NotAllowed(f"{host} resolves to a private address")


async def _resolve_with_os(host: str, port: int) -> list[str]:
    """Every address `host` resolves to; NotAllowed when it does not resolve."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise NotAllowed(f"{host} does not resolve") from exc
    return [str(info[4][0]) for info in infos]


# The resolver check_result_url asks; tests replace it to point KIE's host names at chosen addresses.
resolve: Callable[[str, int], Awaitable[list[str]]] = _resolve_with_os


def file_id_of(message: Message) -> str | None:
    if message.photo:
        return message.photo[-1].file_id
    for item in (message.video, message.audio, message.document, message.animation, message.voice):
        if item is not None:
            return item.file_id
    return None


def _refused(exc: BadRequest) -> bool:
    return any(marker in str(exc).lower() for marker in _URL_REFUSED)


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


async def download(url: str, limit: int) -> bytes:
    """The bytes at `url`, refusing anything over `limit` (TooLarge) and any URL, including a
    redirect's target, that check_result_url refuses (NotAllowed)."""
    async with httpx.AsyncClient(timeout=DOWNLOAD_TIMEOUT_S, follow_redirects=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            await check_result_url(url)
            async with client.stream("GET", url) as resp:
                if resp.is_redirect:
                    url = str(resp.url.join(resp.headers.get("location", "")))
                    continue
                resp.raise_for_status()
                return await _read_limited(resp, limit)
    raise NotAllowed(f"more than {MAX_REDIRECTS} redirects")


async def _read_limited(resp: httpx.Response, limit: int) -> bytes:
    announced = resp.headers.get("content-length") or "0"
    if announced.isdigit() and int(announced) > limit:
        raise TooLarge(f"{resp.headers['content-length']} bytes")
    chunks, size = [], 0
    async for chunk in resp.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _filename(url: str, kind: str) -> str:
    name = url.split("?", maxsplit=1)[0].rstrip("/").rsplit("/", 1)[-1]
    return name or f"result.{ {'photo': 'png', 'video': 'mp4', 'audio': 'mp3'}.get(kind, 'bin') }"


async def send_media(bot: Bot, chat_id: int, kind: str, source: str, caption: str | None = None,
                     reply_markup: Markup = None, reply: ReplyParameters | None = None) -> Message:
    """Send one photo/video/audio/document by URL or file_id, uploading it when Telegram
    will not fetch the URL."""
    method = getattr(bot, f"send_{kind}")
    try:
        return await method(chat_id, source, caption=caption, reply_markup=reply_markup,  # type: ignore[no-any-return]
                            reply_parameters=reply)
    except BadRequest as exc:
        if not _is_url(source) or not _refused(exc):
            raise
    await bot.send_chat_action(chat_id, UPLOAD_ACTION.get(kind, ChatAction.UPLOAD_DOCUMENT))
    data = await download(source, UPLOAD_LIMIT_BYTES.get(kind, DEFAULT_UPLOAD_LIMIT_BYTES))
    return await method(chat_id, InputFile(data, filename=_filename(source, kind)),  # type: ignore[no-any-return]
                        caption=caption, reply_markup=reply_markup, reply_parameters=reply)


async def send_album(bot: Bot, chat_id: int, kind: str, sources: Sequence[str],
                     caption: str | None = None, reply: ReplyParameters | None = None) -> list[Message]:
    """Several results as albums of up to ten (the caption, and the reply, on the first); albums
    carry no buttons."""
    media_type = _INPUT_MEDIA[kind]
    sent: list[Message] = []
    for start in range(0, len(sources), ALBUM_MAX):
        chunk = list(sources[start:start + ALBUM_MAX])
        first = start == 0
        if len(chunk) == 1:
            sent.append(await send_media(bot, chat_id, kind, chunk[0], caption if first else None,
                                         reply=reply if first else None))
            continue
        items: list[Any] = [media_type(s, caption=caption if first and i == 0 else None)
                            for i, s in enumerate(chunk)]
        try:
            sent += await bot.send_media_group(chat_id, items, reply_parameters=reply if first else None)
        except BadRequest as exc:
            if not _refused(exc):
                raise
            limit = UPLOAD_LIMIT_BYTES.get(kind, DEFAULT_UPLOAD_LIMIT_BYTES)
            uploads = [media_type(InputFile(await download(s, limit), filename=_filename(s, kind)),
                                  caption=caption if first and i == 0 else None) for i, s in enumerate(chunk)]
            sent += await bot.send_media_group(chat_id, uploads, reply_parameters=reply if first else None)
    return sent


# What makes a link the answer: Telegram refused the file (not the chat), or we could not fetch it.
_LINK_INSTEAD = (BadRequest, TooLarge, httpx.HTTPError)


def _link_will_do(exc: Exception, sources: Sequence[str]) -> bool:
    if isinstance(exc, NotAllowed) or not all(_is_url(s) for s in sources):
        return False        # never show a URL we refused to fetch, nor a file_id
    return not (isinstance(exc, BadRequest) and "chat not found" in str(exc).lower())


async def send_or_link(bot: Bot, chat_id: int, kind: str, source: str, caption: str | None = None,
                       reply_markup: Markup = None, reply: ReplyParameters | None = None) -> Message:
    """The one way a result file is sent: the file (by URL, else uploaded), or, when Telegram
    refuses it or it cannot be fetched, a message with its link. Nothing of the file was sent
    when the link goes, so this is still one message."""
    try:
        return await send_media(bot, chat_id, kind, source, caption, reply_markup, reply)
    except _LINK_INSTEAD as exc:
        if not _link_will_do(exc, [source]):
            raise
    return await bot.send_message(chat_id, fit("\n".join(filter(None, [caption, source]))),
                                  reply_markup=reply_markup, reply_parameters=reply)


async def send_album_or_links(bot: Bot, chat_id: int, kind: str, sources: Sequence[str],
                              caption: str | None = None, reply: ReplyParameters | None = None) -> list[Message]:
    """One album (2-10 files), or one message with their links when Telegram refuses them."""
    try:
        return await send_album(bot, chat_id, kind, sources, caption, reply)
    except _LINK_INSTEAD as exc:
        if not _link_will_do(exc, sources):
            raise
    return [await bot.send_message(chat_id, fit("\n".join(filter(None, [caption, *sources]))),
                                   reply_parameters=reply)]


async def download_telegram_file(bot: Bot, file_id: str) -> tuple[bytes, str]:
    """A file a user sent us: its bytes and a file name."""
    tg_file = await bot.get_file(file_id)
    data = bytes(await tg_file.download_as_bytearray())
    return data, (tg_file.file_path or file_id).rsplit("/", 1)[-1]
