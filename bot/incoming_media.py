"""What a user sent as a file, and whether the step being asked takes it.

A file is judged by what it is, not by how it was sent: a photo, or a document whose MIME type
(or, lacking one, its file name) says image, counts as an image; the same for video and audio.
A step that wants an image refuses a PDF with a plain reason, and a file in a format the
model does not take (its catalogue `formats`) or over its size limit (or over the 20 MB a bot
may fetch from Telegram) is refused before anything is stored, in plain words
(`refusal_words`). Telegram vouches for the MIME type only as far as the sender's client does;
the bytes themselves can only be checked where they are downloaded (in the job, before the
upload to KIE). No I/O here.
"""
from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from typing import Any

from telegram import Message

from bot.questions import MEDIA_WORD
from config.catalogue import InputField
from config.texts import text

BOT_DOWNLOAD_LIMIT_MB = 20          # Telegram's getFile limit for bots
PHOTO_MIME = "image/jpeg"           # Telegram re-encodes every photo as JPEG
KINDS = ("image", "video", "audio")
# Spellings clients use for the same format, as a model's catalogue lists it.
_SAME = {"audio/mp3": "audio/mpeg", "audio/x-wav": "audio/wav", "audio/wave": "audio/wav", "audio/x-m4a": "audio/mp4",
         "audio/m4a": "audio/mp4", "image/jpg": "image/jpeg", "video/mov": "video/quicktime"}


@dataclass(frozen=True)
class Received:
    """One file in a message: how it was sent (`sent_as`: photo, video, audio, voice, document,
    animation), the kind it is (image, video, audio, or file), and what Telegram says of it."""

    sent_as: str
    kind: str
    file_id: str
    mime_type: str | None = None
    file_name: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class Refusal:
    """Why a file does not fit a step: a texts key and its values (the field's label is added
    by the caller)."""

    key: str
    values: dict[str, Any]


def received(message: Message) -> Received | None:
    """The file in `message` (the largest size of a photo), or None when there is none."""
    if message.photo:
        photo = message.photo[-1]
        return Received("photo", "image", photo.file_id, PHOTO_MIME, None, photo.file_size)
    for sent_as, item in (("video", message.video), ("animation", message.animation), ("audio", message.audio),
                          ("voice", message.voice), ("document", message.document)):
        if item is None:
            continue
        mime = getattr(item, "mime_type", None)
        name = getattr(item, "file_name", None)
        guessed = mime or (mimetypes.guess_type(name)[0] if name else None)
        kind = {"video": "video", "animation": "video", "audio": "audio", "voice": "audio"}.get(sent_as) or (
            kind_of(guessed))
        return Received(sent_as, kind, item.file_id, guessed, name, item.file_size)
    return None


def kind_of(mime: str | None) -> str:
    """image, video or audio by a MIME type's top level; file for anything else or nothing."""
    top = (mime or "").split("/", 1)[0].lower()
    return top if top in KINDS else "file"


def refusal(file: Received, media: dict[str, Any]) -> Refusal | None:
    """Why `file` does not fit a field with this catalogue `media` description, or None."""
    wanted = str(media.get("kind") or "file")
    if wanted in KINDS and file.kind != wanted:
        return Refusal("media_wrong_kind", {"wanted": wanted, "got": got_key(file), "type": type_word(file)})
    formats = [str(f).lower() for f in media.get("formats") or ()]
    mime = _SAME.get((file.mime_type or "").lower(), (file.mime_type or "").lower())
    accepted = {_SAME.get(f, f) for f in formats}
    if formats and mime and mime not in accepted:
        return Refusal("media_wrong_format", {"formats": ", ".join(_format_word(f) for f in formats),
                                              "format": type_word(file)})
    limit = min(float(media.get("max_size_mb") or BOT_DOWNLOAD_LIMIT_MB), BOT_DOWNLOAD_LIMIT_MB)
    if file.size is not None and file.size > limit * 1024 * 1024:
        return Refusal("media_too_large", {"size": f"{file.size / 1024 / 1024:.1f}", "limit": f"{limit:g}"})
    return None


def refusal_words(lang: str, field: InputField, refusal: Refusal) -> str:
    """Why a file does not fit `field`, in plain words ("Photo needs a photo, and this is a PDF
    file. Please send a photo.")."""
    values = dict(refusal.values)
    if refusal.key == "media_wrong_kind":
        values = {"what": text(lang, MEDIA_WORD.get(values["wanted"], "media_file")),
                  "got": text(lang, values["got"], type=values["type"])}
    return text(lang, refusal.key, field=field.label(lang), **values)


def got_key(file: Received) -> str:
    """The texts key naming what the user sent ("a photo", "a PDF file")."""
    if file.kind == "image":
        return "media_got_photo"
    if file.kind in ("video", "audio"):
        return f"media_got_{file.kind}"
    return "media_got_file"


def type_word(file: Received) -> str:
    """A file's format in one word: PDF, MP4, JPEG (from its name, else its MIME type)."""
    if file.file_name and "." in file.file_name:
        return file.file_name.rsplit(".", 1)[-1].upper()
    if file.mime_type:
        return _format_word(file.mime_type)
    return "?"


def _format_word(mime: str) -> str:
    """"image/jpeg" → "JPEG", "video/quicktime" → "MOV", "audio/mpeg" → "MP3"."""
    sub = mime.split("/", 1)[-1].lower()
    return {"quicktime": "MOV", "mpeg": "MP3", "x-wav": "WAV", "x-matroska": "MKV", "x-ms-wma": "WMA",
            "mp4": "MP4" if mime.startswith("video") else "M4A"}.get(sub, sub.upper())
