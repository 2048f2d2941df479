"""What a finished job looks like in the chat, as a plan of parts sent through the Sender port.

A delivery is a list of `Part`s, each one Telegram message or album: one file with its buttons;
albums of up to ten with the buttons in a follow-up message; a text; or the failure notice in
the progress message. The plan is a pure function of the job, so whoever holds the delivery
claim (this actor after a retry, or a new leader) computes the same parts and resumes from the
first one not recorded as sent: no part is ever sent twice because a later one failed.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from actors.ports import Buttons, Sender, SendError, SendOutcome, Sent
from config.catalogue import ModelSpec
from config.texts import text
from storage.jobs import Job

ALBUM_MAX = 10


class PartKind(enum.Enum):
    MEDIA = "media"        # one file with the buttons (a link in a text if Telegram refuses it)
    ALBUM = "album"        # 2-10 files, no buttons (links in a text if Telegram refuses them)
    TEXT = "text"          # a message with optional buttons
    NOTICE = "notice"      # the failure notice: an edit of the progress message, else a message


@dataclass(frozen=True)
class Part:
    kind: PartKind
    text: str = ""                     # the message (TEXT, NOTICE) or the caption (MEDIA, ALBUM)
    media_kind: str = "document"
    sources: tuple[str, ...] = ()
    buttons: Buttons | None = None
    edit_message_id: int | None = None


@dataclass(frozen=True)
class DeliveryPart:
    """What one sent part left in the chat, as stored in jobs.delivery_parts."""

    message_ids: tuple[int, ...]
    file_ids: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"message_ids": list(self.message_ids), "file_ids": list(self.file_ids)}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> DeliveryPart:
        return cls(tuple(int(m) for m in value.get("message_ids", ())),
                   tuple(str(f) for f in value.get("file_ids", ())))


def result_buttons(job: Job, spec: ModelSpec | None) -> Buttons:
    lang = job.lang
    first = [(text(lang, "btn_regenerate"), f"job:regen:{job.id}")]
    if spec is not None and spec.field("prompt") is not None:
        first.append((text(lang, "btn_edit_prompt"), f"job:edit:{job.id}"))
    second = [(text(lang, "btn_create_another"), "menu:create")]
    if spec is not None and spec.result_kind == "photo":
        second.insert(0, (text(lang, "btn_original"), f"job:orig:{job.id}"))
    return [first, second, [(text(lang, "btn_menu"), "menu:home")]]


def plan(job: Job, spec: ModelSpec | None) -> list[Part]:
    """Every part of this job's delivery, in order."""
    title = spec.name(job.lang) if spec else job.model
    if job.outcome != "success":
        notice = text(job.lang, "progress_failed", title=title, reason=job.failure_reason or "")
        buttons = [[(text(job.lang, "btn_retry"), f"job:regen:{job.id}"), (text(job.lang, "btn_menu"), "menu:home")]]
        return [Part(PartKind.NOTICE, notice, buttons=buttons, edit_message_id=job.progress_message_id)]
    prompt = str(job.input.get("prompt") or job.input.get("text") or "")
    caption = text(job.lang, "result_caption", title=title, prompt=prompt) if prompt else title
    buttons = result_buttons(job, spec)
    kind = spec.result_kind if spec else "document"
    urls = tuple(job.result_urls or ())
    if kind == "text" or not urls:
        body = text(job.lang, "result_text", title=title, text=job.result_text or "")
        return [Part(PartKind.TEXT, body, buttons=buttons)]
    if len(urls) == 1:
        return [Part(PartKind.MEDIA, caption, kind, urls, buttons)]
    albums = [Part(PartKind.ALBUM, caption if start == 0 else "", kind, urls[start:start + ALBUM_MAX])
              for start in range(0, len(urls), ALBUM_MAX)]
    return [*albums, Part(PartKind.TEXT, f"⬆️ {title}", buttons=buttons)]


def send_part(sender: Sender, chat_id: int, part: Part) -> Sent:
    """Send one part. Raises SendError; an outcome of UNKNOWN means this part may be in the
    chat. A refused file falls back to links within the same part (nothing of it was sent)."""
    match part.kind:
        case PartKind.MEDIA:
            try:
                return sender.send_media(chat_id, part.media_kind, part.sources[0], part.text, part.buttons)
            except SendError as exc:
                if exc.outcome != SendOutcome.REJECTED:
                    raise
                return sender.send_text(chat_id, f"{part.text}\n{part.sources[0]}", part.buttons)
        case PartKind.ALBUM:
            try:
                return sender.send_album(chat_id, part.media_kind, list(part.sources), part.text or None)
            except SendError as exc:
                if exc.outcome != SendOutcome.REJECTED:
                    raise
                return sender.send_text(chat_id, "\n".join(filter(None, [part.text, *part.sources])))
        case PartKind.TEXT:
            return sender.send_text(chat_id, part.text, part.buttons)
        case PartKind.NOTICE:
            return _send_notice(sender, chat_id, part)


def _send_notice(sender: Sender, chat_id: int, part: Part) -> Sent:
    """The failure notice replaces the progress message; an edit is harmless to repeat, so an
    edit whose outcome is unknown is retried. Only if Telegram refuses the edit (the message
    is gone) is a new message sent, and that one is never repeated blindly."""
    if part.edit_message_id:
        try:
            sender.edit_text(chat_id, part.edit_message_id, part.text, part.buttons)
            return Sent((part.edit_message_id,))
        except SendError as exc:
            if exc.outcome == SendOutcome.UNKNOWN:
                raise SendError(SendOutcome.RETRY, f"edit outcome unknown, safe to repeat: {exc.detail}") from exc
            if exc.outcome != SendOutcome.REJECTED:
                raise
    return sender.send_text(chat_id, part.text, part.buttons)
