"""What a user sent as a file, and whether the step being asked takes it.

A file is judged by what it is, not by how it was sent or what it is called: a photo is an image
(Telegram re-encodes every photo as JPEG); any other file is judged by its label (MIME type, else
file name) until the handler reads it through the bot's one download path and `by_bytes` judges it
by its signature (bot.file_signature), which wins where the two disagree. A file not of the step's
kind, in a format the model does not take (its catalogue `formats`), or over its size limit (or
the 20 MB a bot may fetch; never downloaded) is refused in plain words (`refusal_words`). No I/O.
"""
from __future__ import annotations

import mimetypes
from dataclasses import dataclass, replace
from typing import Any

from telegram import Message

from bot import file_signature
from bot.questions import MEDIA_WORD
from config.catalogue import InputField
from config.texts import text

BOT_DOWNLOAD_LIMIT_MB = 20          # Telegram's getFile limit for bots
PHOTO_MIME = "image/jpeg"           # Telegram re-encodes every photo as JPEG
KINDS = ("image", "video", "audio")
# Spellings clients use for the same format, as a model's catalogue lists it.
_SAME = {"audio/mp3": "audio/mpeg", "audio/x-wav": "audio/wav", "audio/wave": "audio/wav",
         "audio/vnd.wave": "audio/wav", "audio/x-m4a": "audio/mp4", "audio/m4a": "audio/mp4",
         "audio/x-flac": "audio/flac", "image/jpg": "image/jpeg", "video/mov": "video/quicktime",
         "video/x-msvideo": "video/avi", "video/msvideo": "video/avi"}


@dataclass(frozen=True)
class Received:
    """One file in a message: how it was sent (`sent_as`: photo, video, audio, voice, document,
    animation), the kind it is (image, video, audio, or file), and what Telegram says of it.
    Once its bytes were read (`by_bytes`): `read`, the format they name (`word`, None when they
    name none known) and the kind its label gave (`label_kind`), which `kind` may now contradict."""

    sent_as: str
    kind: str
    file_id: str
    mime_type: str | None = None
    file_name: str | None = None
    size: int | None = None
    read: bool = False
    word: str | None = None
    label_kind: str | None = None


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


def worth_reading(file: Received, media: dict[str, Any]) -> bool:
    """Whether the handler should read the file's bytes before judging it for a field with this
    `media`: any file but a photo (Telegram made that JPEG itself), unless its size alone refuses
    it; such a file is never downloaded."""
    return file.sent_as != "photo" and not _too_large(file, media)


def by_bytes(file: Received, data: bytes) -> Received:
    """`file` judged by its first bytes (`data`, a prefix will do): the format they name decides
    its kind and MIME type, whatever its label said, unless the same bytes may equally be of the
    label's kind (an MP4 container labelled audio is taken as audio/mp4). Bytes of no known
    format leave the label's judgement, marked as read."""
    found = file_signature.identify(data[:file_signature.HEAD_BYTES])
    if found is None:
        return replace(file, read=True, label_kind=file.kind)
    alike = next((m for m in sorted(found.alike) if kind_of(m) == file.kind), None)
    if found.kind != file.kind and alike is not None:
        return replace(file, mime_type=alike, read=True, word=_format_word(alike), label_kind=file.kind)
    return replace(file, kind=found.kind, mime_type=found.mime, read=True, word=found.word, label_kind=file.kind)


def refusal(file: Received, media: dict[str, Any]) -> Refusal | None:
    """Why `file` does not fit a field with this catalogue `media` description, or None. A file
    whose bytes were read and name no known format fits no field that lists its formats."""
    wanted = str(media.get("kind") or "file")
    if wanted in KINDS and file.kind != wanted:
        disguised = file.word is not None and file.label_kind == wanted
        return Refusal("media_disguised" if disguised else "media_wrong_kind",
                       {"wanted": wanted, "got": got_key(file), "type": type_word(file)})
    formats = [str(f).lower() for f in media.get("formats") or ()]
    named = ", ".join(dict.fromkeys(_format_word(f) for f in formats))
    if formats and file.read and file.word is None:
        return Refusal("media_unrecognised", {"formats": named})
    mime = _same(file.mime_type)
    accepted = {_same(f) for f in formats}
    if formats and mime and mime not in accepted:
        return Refusal("media_wrong_format", {"formats": named, "format": type_word(file)})
    if _too_large(file, media):
        limit = _limit_mb(media)
        assert file.size is not None
        return Refusal("media_too_large", {"size": f"{file.size / 1024 / 1024:.1f}", "limit": f"{limit:g}"})
    return None


def _limit_mb(media: dict[str, Any]) -> float:
    """The most a field takes, in MB: its own limit, and never more than a bot may fetch."""
    return min(float(media.get("max_size_mb") or BOT_DOWNLOAD_LIMIT_MB), BOT_DOWNLOAD_LIMIT_MB)


def _too_large(file: Received, media: dict[str, Any]) -> bool:
    return file.size is not None and file.size > _limit_mb(media) * 1024 * 1024


def _same(mime: str | None) -> str:
    """A MIME type as the catalogue spells it ("audio/x-wav" → "audio/wav"), lower case."""
    lowered = (mime or "").lower()
    return _SAME.get(lowered, lowered)


def refusal_words(lang: str, field: InputField, refusal: Refusal) -> str:
    """Why a file does not fit `field`, in plain words ("Photo needs a photo, and this is a PDF
    file. Please send a photo.")."""
    values = dict(refusal.values)
    if refusal.key in ("media_wrong_kind", "media_disguised"):
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
    """A file's format in one word: PDF, MP4, JPEG (from its bytes, else its name, else its MIME
    type)."""
    if file.word:
        return file.word
    if file.file_name and "." in file.file_name:
        return file.file_name.rsplit(".", 1)[-1].upper()
    if file.mime_type:
        return _format_word(file.mime_type)
    return "?"


def _format_word(mime: str) -> str:
    """"image/jpeg" → "JPEG", "video/quicktime" → "MOV", "audio/mpeg" → "MP3"."""
    sub = mime.split("/", 1)[-1].lower()
    return {"quicktime": "MOV", "mpeg": "MP3", "x-wav": "WAV", "x-matroska": "MKV", "x-ms-wma": "WMA",
            "x-msvideo": "AVI", "3gpp": "3GP", "x-flac": "FLAC",
            "mp4": "MP4" if mime.startswith("video") else "M4A"}.get(sub, sub.upper())
