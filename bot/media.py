"""Sending results by media type, URL first: when Telegram will not fetch a URL (or it is too
big for URL sending) the bytes are downloaded and uploaded instead; past the upload limit the
caller gets `TooLarge` and sends a link. One async implementation, used by handlers directly
and by the actors through bot/sender.py."""
from __future__ import annotations

from typing import Any, Sequence

import httpx
from telegram import (Bot, InputFile, InputMediaAudio, InputMediaDocument, InputMediaPhoto, InputMediaVideo,
                      Message, ReplyKeyboardMarkup)
from telegram import InlineKeyboardMarkup
from telegram.constants import ChatAction
from telegram.error import BadRequest

UPLOAD_LIMIT_BYTES = {"photo": 10 * 1024 * 1024}
DEFAULT_UPLOAD_LIMIT_BYTES = 50 * 1024 * 1024
DOWNLOAD_TIMEOUT_S = 60.0
ALBUM_MAX = 10
_URL_REFUSED = ("failed to get http url content", "wrong type of the web page content", "wrong file identifier",
                "wrong remote file", "webpage_media_empty", "webpage_curl_failed", "file is too big")
_INPUT_MEDIA = {"photo": InputMediaPhoto, "video": InputMediaVideo, "audio": InputMediaAudio,
                "document": InputMediaDocument}
Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | None
UPLOAD_ACTION = {"photo": ChatAction.UPLOAD_PHOTO, "video": ChatAction.UPLOAD_VIDEO, "audio": ChatAction.UPLOAD_VOICE}


class TooLarge(Exception):
    """The file is bigger than Telegram lets a bot upload."""


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
    """The bytes at `url`, refusing anything over `limit`."""
    async with httpx.AsyncClient(timeout=DOWNLOAD_TIMEOUT_S, follow_redirects=True) as client:
        async with client.stream("GET", url) as resp:
            resp.raise_for_status()
            if int(resp.headers.get("content-length") or 0) > limit:
                raise TooLarge(f"{resp.headers['content-length']} bytes")
            chunks, size = [], 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"over {limit} bytes")
                chunks.append(chunk)
    return b"".join(chunks)


def _filename(url: str, kind: str) -> str:
    name = url.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
    return name or f"result.{ {'photo': 'png', 'video': 'mp4', 'audio': 'mp3'}.get(kind, 'bin') }"


async def send_media(bot: Bot, chat_id: int, kind: str, source: str, caption: str | None = None,
                     reply_markup: Markup = None) -> Message:
    """Send one photo/video/audio/document by URL or file_id, uploading it when Telegram
    will not fetch the URL."""
    method = getattr(bot, f"send_{kind}")
    try:
        return await method(chat_id, source, caption=caption, reply_markup=reply_markup)  # type: ignore[no-any-return]
    except BadRequest as exc:
        if not _is_url(source) or not _refused(exc):
            raise
    await bot.send_chat_action(chat_id, UPLOAD_ACTION.get(kind, ChatAction.UPLOAD_DOCUMENT))
    data = await download(source, UPLOAD_LIMIT_BYTES.get(kind, DEFAULT_UPLOAD_LIMIT_BYTES))
    return await method(chat_id, InputFile(data, filename=_filename(source, kind)),  # type: ignore[no-any-return]
                        caption=caption, reply_markup=reply_markup)


async def send_album(bot: Bot, chat_id: int, kind: str, sources: Sequence[str], caption: str | None = None) -> list[Message]:
    """Several results as albums of up to ten (the caption on the first item); albums carry no buttons."""
    media_type = _INPUT_MEDIA[kind]
    sent: list[Message] = []
    for start in range(0, len(sources), ALBUM_MAX):
        chunk = list(sources[start:start + ALBUM_MAX])
        if len(chunk) == 1:
            sent.append(await send_media(bot, chat_id, kind, chunk[0], caption if start == 0 else None))
            continue
        items: list[Any] = [media_type(s, caption=caption if start == 0 and i == 0 else None)
                            for i, s in enumerate(chunk)]
        try:
            sent += await bot.send_media_group(chat_id, items)
        except BadRequest as exc:
            if not _refused(exc):
                raise
            limit = UPLOAD_LIMIT_BYTES.get(kind, DEFAULT_UPLOAD_LIMIT_BYTES)
            uploads = [media_type(InputFile(await download(s, limit), filename=_filename(s, kind)),
                                  caption=caption if start == 0 and i == 0 else None) for i, s in enumerate(chunk)]
            sent += await bot.send_media_group(chat_id, uploads)
    return sent


async def download_telegram_file(bot: Bot, file_id: str) -> tuple[bytes, str]:
    """A file a user sent us: its bytes and a file name."""
    tg_file = await bot.get_file(file_id)
    data = bytes(await tg_file.download_as_bytearray())
    return data, (tg_file.file_path or file_id).rsplit("/", 1)[-1]
