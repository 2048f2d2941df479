"""What a finished job looks like in the chat, through the Sender port only: the result by
media type (one file, or albums with the buttons in a follow-up message, or text), a link when
Telegram refuses the file, and the failure notice in the progress message."""
from __future__ import annotations

from actors.ports import Buttons, Sender, SendError, SendOutcome, Sent
from config.catalogue import ModelSpec
from config.texts import text
from storage.jobs import Job

TEXT_LIMIT = 4000


def result_buttons(job: Job, spec: ModelSpec | None) -> Buttons:
    lang = job.lang
    first = [(text(lang, "btn_regenerate"), f"job:regen:{job.id}")]
    if spec is not None and spec.field("prompt") is not None:
        first.append((text(lang, "btn_edit_prompt"), f"job:edit:{job.id}"))
    second = [(text(lang, "btn_create_another"), "menu:create")]
    if spec is not None and spec.result_kind == "photo":
        second.insert(0, (text(lang, "btn_original"), f"job:orig:{job.id}"))
    return [first, second, [(text(lang, "btn_menu"), "menu:home")]]


def send_result(sender: Sender, job: Job, spec: ModelSpec | None) -> Sent:
    title = spec.name(job.lang) if spec else job.model
    prompt = str(job.input.get("prompt") or job.input.get("text") or "")
    caption = text(job.lang, "result_caption", title=title, prompt=prompt)[:1000] if prompt else title
    buttons = result_buttons(job, spec)
    kind = spec.result_kind if spec else "document"
    urls = list(job.result_urls or [])
    if kind == "text" or not urls:
        body = text(job.lang, "result_text", title=title, text=(job.result_text or "")[:TEXT_LIMIT])
        return sender.send_text(job.chat_id, body, buttons)
    if len(urls) == 1:
        try:
            return sender.send_media(job.chat_id, kind, urls[0], caption, buttons)
        except SendError as exc:
            if exc.outcome != SendOutcome.REJECTED:
                raise
            return sender.send_text(job.chat_id, f"{caption}\n{urls[0]}", buttons)   # Telegram refused the file
    try:
        album = sender.send_album(job.chat_id, kind, urls, caption)
    except SendError as exc:
        if exc.outcome != SendOutcome.REJECTED:
            raise
        album = sender.send_text(job.chat_id, "\n".join([caption, *urls]))
    follow_up = sender.send_text(job.chat_id, f"⬆️ {title}", buttons)
    return Sent(album.message_ids + follow_up.message_ids, album.file_ids)


def send_failure(sender: Sender, job: Job, spec: ModelSpec | None) -> list[int]:
    title = spec.name(job.lang) if spec else job.model
    notice = text(job.lang, "progress_failed", title=title, reason=job.failure_reason or "")
    buttons = [[(text(job.lang, "btn_retry"), f"job:regen:{job.id}"), (text(job.lang, "btn_menu"), "menu:home")]]
    if job.progress_message_id:
        try:
            sender.edit_text(job.chat_id, job.progress_message_id, notice, buttons)
            return [job.progress_message_id]
        except SendError as exc:
            if exc.outcome != SendOutcome.REJECTED:
                raise
    return list(sender.send_text(job.chat_id, notice, buttons).message_ids)
