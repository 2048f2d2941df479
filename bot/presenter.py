"""The actors' Sender port (actors/ports.py), presented in Telegram: everything a user reads or
taps about a job is made here, in the job's language, from config/texts and
bot/callback_data.py. The actors only say what happened.

A result is a *plan* of messages computed from the job alone (albums of up to ten files, then
the buttons message; one file with its buttons; or a text), so whoever resumes a delivery (the
same actor after a 429, or a new leader) sends the same parts and skips the ones recorded as
sent. Files go through bot/media.py's one path (a link when Telegram refuses the file).

Money is told as it is: every failure or cancellation notice says "you were not charged" (a
free job) or "N credits returned" (its hold was released in the transaction that recorded the
failure), and a paid result's caption says what it cost.
"""
from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from actors.outcomes import Failure, FailureCode, ProgressStage
from actors.ports import SendError, SendOutcome, Sent
from bot import callback_data as cd
from bot.sender import Buttons, TelegramSender
from config.catalogue import Catalogue, ModelSpec
from config.money import format_credits
from config.texts import text
from storage.jobs import Job

ALBUM_MAX = 10


class PartKind(enum.Enum):
    MEDIA = "media"        # one file with the buttons
    ALBUM = "album"        # 2-10 files (albums carry no buttons)
    TEXT = "text"          # a message with optional buttons


@dataclass(frozen=True)
class Part:
    kind: PartKind
    text: str = ""                     # the message (TEXT) or the caption (MEDIA, ALBUM)
    media_kind: str = "document"
    sources: tuple[str, ...] = ()
    buttons: Buttons | None = None


class Presenter:
    """actors.ports.Sender over a TelegramSender (made for one epoch)."""

    def __init__(self, sender: TelegramSender, catalogue: Catalogue) -> None:
        self._sender, self._catalogue = sender, catalogue

    # --- the port -----------------------------------------------------------------------
    def result_parts(self, job: Job) -> int:
        return len(self.plan(job))

    def send_result_part(self, job: Job, index: int) -> Sent:
        part = self.plan(job)[index]
        match part.kind:
            case PartKind.MEDIA:
                return self._sender.send_media(job.chat_id, part.media_kind, part.sources[0], part.text, part.buttons)
            case PartKind.ALBUM:
                return self._sender.send_album(job.chat_id, part.media_kind, list(part.sources), part.text or None)
            case PartKind.TEXT:
                return self._sender.send_text(job.chat_id, part.text, part.buttons)

    def send_failure(self, job: Job) -> Sent:
        """The notice replaces the progress message: an edit is harmless to repeat, so an edit
        whose outcome is unknown is reported as RETRY. Only when Telegram refuses the edit
        (the message is gone) is a new message sent, and that one is never repeated blindly."""
        notice, buttons = self._notice(job)
        if job.progress_message_id:
            try:
                self._sender.edit_text(job.chat_id, job.progress_message_id, notice, buttons)
                return Sent((job.progress_message_id,))
            except SendError as exc:
                if exc.outcome == SendOutcome.UNKNOWN:
                    raise SendError(SendOutcome.RETRY, f"edit outcome unknown, safe to repeat: {exc.detail}") from exc
                if exc.outcome != SendOutcome.REJECTED:
                    raise
        return self._sender.send_text(job.chat_id, notice, buttons)

    def show_progress(self, job: Job, stage: ProgressStage) -> None:
        if not job.progress_message_id:
            return
        if stage == ProgressStage.FAILED:
            notice, buttons = self._notice(job)
            self._sender.edit_text(job.chat_id, job.progress_message_id, notice, buttons)
            return
        elapsed = int((dt.datetime.now(dt.UTC) - job.created_at).total_seconds())
        key = {ProgressStage.GENERATING: "progress_generating", ProgressStage.DONE: "progress_done",
               ProgressStage.CANCELLED: "cancelled_job", ProgressStage.FAILED: "progress_failed"}[stage]
        words = text(job.lang, key, title=self._title(job), elapsed=elapsed)
        if stage == ProgressStage.CANCELLED:
            words = f"{words} {money_words(job)}"
        self._sender.edit_text(job.chat_id, job.progress_message_id, words)

    def download_file(self, file_id: str) -> tuple[bytes, str]:
        return self._sender.download_file(file_id)

    # --- presentation -------------------------------------------------------------------
    def plan(self, job: Job) -> list[Part]:
        """Every message of this job's result, in order; the same for the same job."""
        spec = self._catalogue.get(job.model)
        title = self._title(job)
        prompt = str(job.input.get("prompt") or job.input.get("text") or "")
        caption = text(job.lang, "result_caption", title=title, prompt=prompt) if prompt else title
        if job.price > 0:
            caption += text(job.lang, "result_cost", price=format_credits(job.price))
        buttons = self.result_buttons(job, spec)
        kind = spec.result_kind if spec else "document"
        urls = tuple(job.result_urls or ())
        if kind == "text" or not urls:
            return [Part(PartKind.TEXT, text(job.lang, "result_text", title=title, text=job.result_text or ""),
                         buttons=buttons)]
        if len(urls) == 1:
            return [Part(PartKind.MEDIA, caption, kind, urls, buttons)]
        albums = [Part(PartKind.ALBUM, caption if start == 0 else "", kind, urls[start:start + ALBUM_MAX])
                  for start in range(0, len(urls), ALBUM_MAX)]
        return [*albums, Part(PartKind.TEXT, f"⬆️ {title}", buttons=buttons)]

    @staticmethod
    def result_buttons(job: Job, spec: ModelSpec | None) -> Buttons:
        lang = job.lang
        first = [(text(lang, "btn_regenerate"), cd.build(cd.JobAction("regen", job.id)))]
        if spec is not None and spec.field("prompt") is not None:
            first.append((text(lang, "btn_edit_prompt"), cd.build(cd.JobAction("edit", job.id))))
        second = [(text(lang, "btn_create_another"), cd.build(cd.Menu("create")))]
        if spec is not None and spec.result_kind == "photo":
            second.insert(0, (text(lang, "btn_original"), cd.build(cd.JobAction("orig", job.id))))
        return [first, second, [(text(lang, "btn_menu"), cd.build(cd.Menu("home")))]]

    @staticmethod
    def failure_words(job: Job) -> str:
        """Why the job failed, in the job's language (rows from before failure codes keep the
        sentence they stored)."""
        failure = job.failure
        if failure is None:
            return job.failure_reason or ""
        return describe_failure(job.lang, failure)

    def _notice(self, job: Job) -> tuple[str, Buttons]:
        notice = text(job.lang, "progress_failed", title=self._title(job), reason=self.failure_words(job),
                      money=money_words(job))
        buttons = [[(text(job.lang, "btn_retry"), cd.build(cd.JobAction("regen", job.id))),
                    (text(job.lang, "btn_menu"), cd.build(cd.Menu("home")))]]
        return notice, buttons

    def _title(self, job: Job) -> str:
        spec = self._catalogue.get(job.model)
        return spec.name(job.lang) if spec else job.model


def money_words(job: Job) -> str:
    """What happened to the money of a job that did not deliver: its hold was released (storage:
    the job_resolves_hold trigger, in the transaction that recorded the failure)."""
    if job.price > 0:
        return text(job.lang, "money_returned", amount=format_credits(job.price))
    return text(job.lang, "money_not_charged")


def describe_failure(lang: str, failure: Failure) -> str:
    match failure.code:
        case FailureCode.KIE_FAILED:
            return text(lang, "reason_kie", detail=failure.detail)
        case FailureCode.DEADLINE:
            return text(lang, "reason_deadline", minutes=failure.detail or "?")
        case FailureCode.UNAVAILABLE:
            return text(lang, "reason_unavailable")
        case FailureCode.NO_KIE_CREDIT:
            return text(lang, "reason_no_kie_credit")
        case FailureCode.UPLOAD_REFUSED:
            return text(lang, "reason_upload_refused")
        case FailureCode.INTERNAL:
            return text(lang, "reason_internal")
