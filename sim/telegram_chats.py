"""The simulated Telegram world the bot talks to: users, chats, messages, callback queries, files.

Owns: message_id sequences per chat, the Message/User/Chat JSON Telegram would return, the
chat as the user sees it (`ChatMessage`), inline-button lookup, callback-query bookkeeping, and
the files messages carry (uploads, URL fetches, file_ids, size and dimension checks). `World`
relies on the simulator's lock; `FileStore` locks itself because fetching happens outside it.
It never serves HTTP and leaves request decoding to telegram_spec.
"""
from __future__ import annotations

import mimetypes
import random
import re
import string
import struct
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.client import HTTPException
from typing import Any
from urllib.parse import urlsplit

from sim.telegram_spec import ApiError, Upload, bad_request, check_inline_keyboard, format_text, utf16_len

MEDIA_KINDS = ("photo", "video", "audio", "document", "animation")
_FILE_ID_PREFIX = {"photo": "AgAC", "video": "BAAC", "audio": "CQAC", "document": "BQAC",
                   "animation": "CgAC", "voice": "AwAC"}
_EXTENSION = {"photo": "jpg", "video": "mp4", "audio": "mp3", "animation": "mp4"}
_THUMB_SIDE = 320
MB = 1024 * 1024
PHOTO_URL_LIMIT, FILE_URL_LIMIT = 5 * MB, 20 * MB
PHOTO_UPLOAD_LIMIT, FILE_UPLOAD_LIMIT = 10 * MB, 50 * MB
MAX_TEXT_LENGTH, MAX_CAPTION_LENGTH = 4096, 1024
FETCH_TIMEOUT_S = 5.0
LOOPBACK = ("127.0.0.1", "localhost", "::1")
_URL_DOCUMENT_MAGIC = (b"GIF8", b"%PDF", b"PK\x03\x04")  # by URL, documents must be GIF/PDF/ZIP
NOT_MODIFIED = ("message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message")


@dataclass
class ChatMessage:
    """One message as the user sees it: current text/caption, media and inline buttons; an
    invoice (its Pay button first) or a service line such as a payment or its refund."""

    message_id: int
    from_bot: bool
    text: str | None
    caption: str | None
    media: str | None
    file_id: str | None
    buttons: list[list[tuple[str, str]]]
    edited: bool
    date: float
    invoice: dict[str, Any] | None = None
    service: str | None = None
    reply_to: int | None = None     # the message it replies to (reply_to_message), as it was sent


@dataclass
class StoredFile:
    """Bytes Telegram holds for a file_id, with what getFile and re-sends need."""

    file_id: str
    file_unique_id: str
    kind: str
    data: bytes
    file_path: str
    mime_type: str | None = None
    file_name: str | None = None
    width: int = 0
    height: int = 0


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG, JPEG, GIF or WebP, read from its header; None if not an image."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return width, height
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Walk JPEG segments to the first start-of-frame marker."""
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        i += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """Lossy, lossless and extended WebP keep their size in different places."""
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


class FileStore:
    """file_id -> bytes, with seeded ids that look like Telegram's; thread-safe on its own.

    Resolves what a send method names as its file: an upload, an attach:// part, an HTTP URL
    (fetched here, outcome cached per URL like Telegram does) or an existing file_id.
    """

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._lock = threading.Lock()
        self._by_id: dict[str, StoredFile] = {}
        self._by_path: dict[str, StoredFile] = {}
        self._sizes: dict[str, list[dict[str, Any]]] = {}
        self._urls: dict[str, StoredFile | None] = {}

    def add(self, kind: str, data: bytes, *, mime_type: str | None = None,
            file_name: str | None = None, width: int = 0, height: int = 0) -> StoredFile:
        """Store bytes under a fresh file_id and file_path."""
        alphabet = string.ascii_letters + string.digits + "-_"
        with self._lock:
            token = "".join(self._rng.choice(alphabet) for _ in range(60))
            unique = "AQAD" + "".join(self._rng.choice(alphabet) for _ in range(12))
            extension = _EXTENSION.get(kind) or (file_name or "file.bin").rsplit(".", 1)[-1]
            stored = StoredFile(_FILE_ID_PREFIX.get(kind, "BQAC") + token, unique, kind, data,
                                f"{kind}s/file_{len(self._by_id)}.{extension}", mime_type,
                                file_name, width, height)
            self._by_id[stored.file_id] = stored
            self._by_path[stored.file_path] = stored
        return stored

    def get(self, file_id: str) -> StoredFile | None:
        with self._lock:
            return self._by_id.get(file_id)

    def by_path(self, file_path: str) -> StoredFile | None:
        with self._lock:
            return self._by_path.get(file_path)

    def content(self, kind: str, stored: StoredFile, params: dict[str, Any]) -> dict[str, Any]:
        """The Message field for a sent file: a PhotoSize list, or a Video/Audio/... object."""
        if kind == "photo":
            return {"photo": self.photo_sizes(stored)}
        obj: dict[str, Any] = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                               "file_size": len(stored.data)}
        if kind in ("video", "animation"):
            obj.update(width=params.get("width", stored.width),
                       height=params.get("height", stored.height), duration=params.get("duration", 0))
        if kind == "audio":
            obj["duration"] = params.get("duration", 0)
            obj.update({k: params[k] for k in ("performer", "title") if k in params})
        if stored.file_name:
            obj["file_name"] = stored.file_name
        if stored.mime_type:
            obj["mime_type"] = stored.mime_type
        return {kind: obj}

    def photo_sizes(self, full: StoredFile) -> list[dict[str, Any]]:
        """PhotoSize list like Telegram's: a thumbnail first, the full size last; stable per file."""
        with self._lock:
            cached = self._sizes.get(full.file_id)
        if cached is not None:
            return cached
        sizes = []
        if max(full.width, full.height) > _THUMB_SIDE:
            scale = _THUMB_SIDE / max(full.width, full.height)
            thumb = self.add("photo", full.data, mime_type=full.mime_type,
                             width=max(1, round(full.width * scale)),
                             height=max(1, round(full.height * scale)))
            sizes.append(_photo_size(thumb, len(full.data) // 10 or 1))
        sizes.append(_photo_size(full, len(full.data)))
        with self._lock:
            return self._sizes.setdefault(full.file_id, sizes)

    def resolve(self, kind: str, value: Upload | str, uploads: dict[str, Upload],
                allow_remote: bool = False) -> StoredFile:
        """The file a send method names, stored and checked like Telegram does."""
        if isinstance(value, str) and value.startswith("attach://"):
            part = uploads.get(value[9:])
            if part is None:
                raise bad_request("can't parse InputMedia: media not found")
            value = part
        if isinstance(value, Upload):
            return self._store(kind, value.data, value.content_type, value.filename, upload=True)
        if re.match(r"https?://", value, re.IGNORECASE):
            return self._from_url(kind, value, allow_remote)
        stored = self.get(value)
        if stored is None:
            raise bad_request("wrong file identifier/HTTP URL specified")
        if (stored.kind == "photo") != (kind == "photo"):
            raise bad_request(f"can't use file of type {stored.kind.title()} as {kind.title()}")
        return stored

    def _from_url(self, kind: str, url: str, allow_remote: bool) -> StoredFile:
        """Telegram fetches the URL itself and caches the outcome, failures included."""
        with self._lock:
            known = url in self._urls
            cached = self._urls.get(url)
        if known and cached is None:
            raise bad_request("failed to get HTTP URL content")
        if cached is not None:
            return cached
        fetched = _fetch(url, PHOTO_URL_LIMIT if kind == "photo" else FILE_URL_LIMIT, allow_remote)
        if fetched is None:
            with self._lock:
                self._urls[url] = None
            raise bad_request("failed to get HTTP URL content")
        data, content_type = fetched
        if kind == "document" and not data.startswith(_URL_DOCUMENT_MAGIC):
            raise bad_request("wrong type of the web page content")
        name = urlsplit(url).path.rsplit("/", 1)[-1] or "file"
        stored = self._store(kind, data, content_type, name, upload=False)
        with self._lock:
            self._urls[url] = stored
        return stored

    def _store(self, kind: str, data: bytes, content_type: str, filename: str,
               upload: bool) -> StoredFile:
        """Check size, type and dimensions like Telegram, then keep the bytes under a file_id."""
        if upload and len(data) > FILE_UPLOAD_LIMIT:
            raise ApiError(413, "Request Entity Too Large")
        width, height = image_size(data) or (0, 0)
        if kind == "photo":
            if upload and len(data) > PHOTO_UPLOAD_LIMIT:
                raise bad_request("PHOTO_SAVE_FILE_INVALID")
            if not width:
                raise bad_request("IMAGE_PROCESS_FAILED" if upload
                                  else "wrong type of the web page content")
            if width + height > 10000 or max(width, height) > 20 * min(width, height):
                raise bad_request("PHOTO_INVALID_DIMENSIONS")
        mime = content_type if content_type != "application/octet-stream" else (
            mimetypes.guess_type(filename)[0] or content_type)
        return self.add(kind, data, mime_type=mime, file_name=None if kind == "photo" else filename,
                        width=width, height=height)


def _fetch(url: str, limit: int, allow_remote: bool) -> tuple[bytes, str] | None:
    """GET a URL with a short timeout and no proxies; None on any failure or when over `limit`."""
    if not allow_remote and (urlsplit(url).hostname or "") not in LOOPBACK:
        return None
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=FETCH_TIMEOUT_S) as response:
            data = response.read(limit + 1)
            content_type = response.headers.get_content_type()
    except urllib.error.HTTPError as exc:
        exc.close()
        return None
    except (OSError, HTTPException, ValueError):
        return None
    return None if len(data) > limit else (data, content_type)


def _photo_size(stored: StoredFile, size: int) -> dict[str, Any]:
    return {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
            "file_size": size, "width": stored.width, "height": stored.height}


@dataclass
class _Chat:
    """One chat's Chat JSON and its messages, oldest first, as currently shown."""

    info: dict[str, Any]
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    sent_at: dict[int, float] = field(default_factory=dict)
    next_id: int = 1

    def add(self, sender: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
        """Store a message with the next message_id of this chat."""
        now = time.time()
        message = {"message_id": self.next_id, "from": sender, "chat": self.info,
                   "date": int(now), **content}
        self.messages[self.next_id] = message
        self.sent_at[self.next_id] = now
        self.next_id += 1
        return message


@dataclass
class _Query:
    """A callback query the bot may answer once."""

    user_id: int
    answered: bool = False


class World:
    """Users, chats, messages and pending callback queries; the state behind every method."""

    def __init__(self, bot_user: dict[str, Any], rng: random.Random) -> None:
        self.bot_user = bot_user
        self._rng = rng
        self.users: dict[int, dict[str, Any]] = {}
        self.chats: dict[int, _Chat] = {}
        self.queries: dict[str, _Query] = {}
        self.blocked: set[int] = set()

    # ------------------------------------------------------------ the user's side

    def touch_user(self, user_id: int, first_name: str = "Test",
                   language_code: str = "en") -> dict[str, Any]:
        """Create or refresh the User JSON for a simulated person."""
        user = {"id": user_id, "is_bot": False, "first_name": first_name,
                "language_code": language_code}
        self.users[user_id] = user
        return user

    def chat_of(self, user: dict[str, Any], chat_id: int | None) -> _Chat:
        """The chat a user writes in: their private chat, or a group they open by writing."""
        chat_id = user["id"] if chat_id is None else chat_id
        if chat_id not in self.chats:
            if chat_id > 0:
                info = {"id": chat_id, "type": "private", "first_name": user["first_name"]}
            else:
                kind = "supergroup" if chat_id <= -1_000_000_000_000 else "group"
                info = {"id": chat_id, "type": kind, "title": f"Group {chat_id}"}
            self.chats[chat_id] = _Chat(info)
        return self.chats[chat_id]

    def user_text(self, user: dict[str, Any], chat_id: int | None, text: str) -> dict[str, Any]:
        """Store a text the user typed; commands get a bot_command entity like Telegram adds."""
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            content["entities"] = [{"type": "bot_command", "offset": 0,
                                    "length": utf16_len(command)}]
        return self.chat_of(user, chat_id).add(user, content)

    def user_photo(self, user: dict[str, Any], chat_id: int | None, stored: StoredFile,
                   files: FileStore, caption: str | None) -> dict[str, Any]:
        """Store a photo the user sent."""
        content: dict[str, Any] = {"photo": files.photo_sizes(stored)}
        if caption:
            content["caption"] = caption
        return self.chat_of(user, chat_id).add(user, content)

    def press(self, user: dict[str, Any], chat_id: int, button_text: str,
              message_id: int | None) -> dict[str, Any]:
        """The CallbackQuery for pressing a button; LookupError when there is no such button."""
        chat = self.chats.get(chat_id)
        candidates = [] if chat is None else [
            m for m in reversed(chat.messages.values())
            if m["from"].get("is_bot") and (message_id is None or m["message_id"] == message_id)]
        for message in candidates:
            data = _button_data(message, button_text)
            if data is not None:
                query_id = str(self._rng.getrandbits(63))
                self.queries[query_id] = _Query(user["id"])
                instance = str((chat_id * 1_000_003 + self.bot_user["id"]) % 10**19)
                return {"id": query_id, "from": user, "message": message,
                        "chat_instance": instance, "data": data}
        raise LookupError(f"no inline button {button_text!r} on a bot message in chat {chat_id}"
                          + (f" (message {message_id})" if message_id is not None else ""))

    # ------------------------------------------------------------ the bot's side

    def target(self, chat_id: int | str) -> _Chat:
        """The chat the bot addresses; it exists only once someone wrote in it."""
        chat = self.chats.get(chat_id) if isinstance(chat_id, int) else None
        if chat is None:
            raise bad_request("chat not found")
        return chat

    def bot_sends(self, chat_id: int, content: dict[str, Any]) -> dict[str, Any]:
        """Store a bot message and return its Message JSON."""
        return self.target(chat_id).add(self.bot_user, content)

    def bot_message(self, chat_id: int, message_id: int, verb: str = "edit") -> dict[str, Any]:
        """A message the bot may change; Telegram's wording when it is gone."""
        message = self.target(chat_id).messages.get(message_id)
        if message is None:
            raise bad_request(f"message to {verb} not found")
        if verb == "edit" and not message["from"].get("is_bot"):
            raise bad_request("message can't be edited")
        return message

    def edit(self, chat_id: int, message_id: int, changes: dict[str, Any],
             drop: tuple[str, ...]) -> dict[str, Any]:
        """Apply an edit; "message is not modified" when nothing would change."""
        message = self.bot_message(chat_id, message_id)
        updated = {k: v for k, v in message.items() if k not in drop and k != "edit_date"}
        updated.update(changes)
        if _visible(updated) == _visible(message):
            raise bad_request(NOT_MODIFIED)
        updated["edit_date"] = int(time.time())
        self.chats[chat_id].messages[message_id] = updated
        return updated

    def delete(self, chat_id: int, message_id: int) -> None:
        """Remove a message from the chat; Telegram's wording when it is already gone."""
        chat = self.target(chat_id)
        if chat.messages.pop(message_id, None) is None:
            raise bad_request("message to delete not found")

    def answer(self, query_id: str) -> None:
        """Mark a callback query answered; unknown or repeated answers are "too old"."""
        query = self.queries.get(query_id)
        if query is None or query.answered:
            raise bad_request("query is too old and response timeout expired or query ID is invalid")
        query.answered = True

    # ------------------------------------------------------------ the view

    def view(self, chat_id: int) -> list[ChatMessage]:
        """The chat as the user sees it now, oldest first."""
        chat = self.chats.get(chat_id)
        if chat is None:
            return []
        return [_as_chat_message(m, chat.sent_at[i]) for i, m in chat.messages.items()]


def text_content(text: str, params: dict[str, Any]) -> dict[str, Any]:
    """Message text and entities after parse_mode, within Telegram's length rules."""
    plain, entities = format_text(text, params.get("parse_mode"), params.get("entities"))
    if not plain:
        raise bad_request("message text is empty")
    if len(plain) > MAX_TEXT_LENGTH:
        raise bad_request("message is too long")
    return {"text": plain, **({"entities": entities} if entities else {})}


def caption_content(params: dict[str, Any]) -> dict[str, Any]:
    """Caption and caption_entities, or nothing for an empty caption."""
    if not params.get("caption"):
        return {}
    plain, entities = format_text(params["caption"], params.get("parse_mode"),
                                  params.get("caption_entities"))
    if len(plain) > MAX_CAPTION_LENGTH:
        raise bad_request("message caption is too long")
    if not plain:
        return {}
    return {"caption": plain, **({"caption_entities": entities} if entities else {})}


def markup_content(params: dict[str, Any]) -> dict[str, Any]:
    """Only inline keyboards show up in the returned Message, as in Telegram."""
    markup = params.get("reply_markup")
    check_inline_keyboard(markup)
    if markup and markup.get("inline_keyboard"):
        return {"reply_markup": {"inline_keyboard": markup["inline_keyboard"]}}
    return {}


def _visible(message: dict[str, Any]) -> tuple[Any, ...]:
    """What the user would notice changing; equal means 'message is not modified'."""
    return tuple(message.get(k) for k in ("text", "entities", "caption", "caption_entities",
                                          "reply_markup", "photo", "video", "audio", "document",
                                          "animation", "invoice"))


def _buttons(message: dict[str, Any]) -> list[list[tuple[str, str]]]:
    """Inline keyboard rows as (text, callback_data or url)."""
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return [[(b["text"], b.get("callback_data", b.get("url", ""))) for b in row] for row in rows]


def _button_data(message: dict[str, Any], wanted: str) -> str | None:
    """callback_data of the button named `wanted`: an exact match first, then a substring."""
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    buttons = [b for row in rows for b in row if "callback_data" in b]
    for matches in (lambda t: t == wanted, lambda t: wanted in t):
        for button in buttons:
            if matches(button["text"]):
                return str(button["callback_data"])
    return None


def _as_chat_message(message: dict[str, Any], sent_at: float) -> ChatMessage:
    """The user's view of one stored Message."""
    media = next((kind for kind in MEDIA_KINDS if kind in message), None)
    file_id = None
    if media == "photo":
        file_id = message["photo"][-1]["file_id"]
    elif media:
        file_id = message[media]["file_id"]
    return ChatMessage(message_id=message["message_id"], from_bot=bool(message["from"].get("is_bot")),
                       text=message.get("text"), caption=message.get("caption"), media=media,
                       file_id=file_id, buttons=_buttons(message), edited="edit_date" in message,
                       date=sent_at, invoice=message.get("invoice"), service=_service_line(message),
                       reply_to=(message.get("reply_to_message") or {}).get("message_id"))


def _service_line(message: dict[str, Any]) -> str | None:
    """What the chat shows for a service message about a payment."""
    if "successful_payment" in message:
        return f"You paid ⭐{message['successful_payment']['total_amount']}"
    if "refunded_payment" in message:
        return f"⭐{message['refunded_payment']['total_amount']} refunded"
    return None
