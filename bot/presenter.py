"""The actors' Sender port (actors/ports.py), presented in Telegram: everything a user reads or
taps about a job is made here, in the job's language, from config/texts and
bot/callback_data.py. The actors only say what happened.

A result is a *plan* of messages computed from the job alone (albums of up to ten files, then
the buttons message; one file with its buttons; or a text), so whoever resumes a delivery (the
same actor after a 429, or a new leader) sends the same parts and skips the ones recorded as
sent. Files go through bot/media.py's one path (a link when Telegram refuses the file). In a
group the result's first message and the failure notice reply to the request message (the
progress message, which the notice replaces, was sent as a reply by bot/launch.py), so everyone
sees whose request it answers; a private chat gets no replies.

Money is told as it is: every failure or cancellation notice says "you were not charged" (a
free job) or "N credits returned" (its hold was released in the transaction that recorded the
failure), the offer to stop waiting says what stopping will do to it, and a paid result's
caption says what it cost.

One message per job: the progress message (sent by bot/launch.py) shows the job's place in the
queue, then how long it has been generating next to the model's usual duration, with Cancel (or,
once KIE has the task and the user asked to cancel, the offer to stop waiting); a failure or a
cancellation replaces it, and once the result is in the chat it is deleted (edited into a short
"done" only when Telegram will not delete it). Every edit goes through FloodControl's limits.
"""
from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from actors.outcomes import Failure, FailureCode, ProgressStage, StopRequest
from actors.ports import SendError, SendOutcome, Sent
from bot import callback_data as cd
from bot import job_buttons, kie_failures, questions
from bot.sender import Buttons, TelegramSender, group_reply
from config.catalogue import Catalogue, ModelSpec
from config.money import format_credits
from config.texts import text
from storage.jobs import Job

ALBUM_MAX = 10
KIE_LANG = "en"        # the language KIE words its failure messages in


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
        reply = group_reply(job.chat_id, job.request_message_id) if index == 0 else None
        match part.kind:
            case PartKind.MEDIA:
                return self._sender.send_media(job.chat_id, part.media_kind, part.sources[0], part.text, part.buttons,
                                               reply)
            case PartKind.ALBUM:
                return self._sender.send_album(job.chat_id, part.media_kind, list(part.sources), part.text or None,
                                               reply)
            case PartKind.TEXT:
                return self._sender.send_text(job.chat_id, part.text, part.buttons, reply)

    def send_failure(self, job: Job) -> Sent:
        """The notice replaces the progress message: an edit is harmless to repeat, so an edit
        whose outcome is unknown is reported as RETRY. Only when Telegram refuses the edit
        (the message is gone) is a new message sent, and that one is never repeated blindly. In a
        group either one replies to the request (the progress message was sent as a reply)."""
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
        return self._sender.send_text(job.chat_id, notice, buttons, group_reply(job.chat_id, job.request_message_id))

    def show_progress(self, job: Job, stage: ProgressStage, *, refresh: bool = False) -> None:
        if not job.progress_message_id:
            return
        lang, title = job.lang, self._title(job)
        buttons: Buttons | None = None
        match stage:
            case ProgressStage.DONE:
                self._clear_progress(job)
                return
            case ProgressStage.FAILED:
                words, buttons = self._notice(job)
            case ProgressStage.GENERATING:
                elapsed = self._elapsed(job)
                words = text(lang, "progress_generating", title=title, elapsed=elapsed,
                             estimate=self._estimate(job, elapsed))
                if job.stop is StopRequest.CANCEL:      # KIE has it: it cannot be stopped, only left
                    words += "\n\n" + text(lang, "cannot_stop", money=future_money_words(job))
                    buttons = control_buttons(lang, job_buttons.Control.STOP_WAITING, job_id=job.id)
                else:
                    buttons = control_buttons(lang, job_buttons.Control.CANCEL, job_id=job.id)
            case ProgressStage.CANCELLED:
                words = f"{text(lang, 'cancelled_job', title=title)}\n{money_words(job)}"
            case ProgressStage.ABANDONED:
                words = f"{text(lang, 'abandoned_job', title=title)}\n{money_words(job)}"
        self._sender.edit_text(job.chat_id, job.progress_message_id, words, buttons, refresh=refresh)

    def show_queued(self, job: Job, position: int) -> None:
        if not job.progress_message_id:
            return
        words = queued_words(job.lang, self._title(job), position, self._estimate(job, None))
        self._sender.edit_text(job.chat_id, job.progress_message_id, words,
                               control_buttons(job.lang, job_buttons.Control.CANCEL, job_id=job.id))

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
            return [Part(PartKind.TEXT, text(job.lang, "result_text", title=title,
                                                   text=questions.readable_result(job.lang, job.result_text)),
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
        second = [(text(lang, "btn_create_another"), cd.build(cd.JobAction("again", job.id)))]
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

    def _estimate(self, job: Job, elapsed: int | None) -> str:
        spec = self._catalogue.get(job.model)
        return estimate_words(job.lang, job.expected_s, job.expected_p90_s,
                              spec.typical_time_s if spec else None, elapsed)

    @staticmethod
    def _elapsed(job: Job) -> int:
        return max(0, int((dt.datetime.now(dt.UTC) - job.generating_since).total_seconds()))

    def _clear_progress(self, job: Job) -> None:
        """The result is in the chat: its progress message goes. Telegram deletes a bot's message
        only for 48 hours; after that (refused) it is edited into a short "done" instead. Gone
        already (a second try after a failover): nothing left to do."""
        assert job.progress_message_id is not None
        try:
            self._sender.delete_message(job.chat_id, job.progress_message_id)
        except SendError as exc:
            if exc.outcome != SendOutcome.REJECTED:
                raise
            if "not found" in exc.detail.lower():
                return
            took = int(((job.delivered_at or dt.datetime.now(dt.UTC)) - job.generating_since).total_seconds())
            self._sender.edit_text(job.chat_id, job.progress_message_id,
                                   text(job.lang, "progress_done", title=self._title(job), elapsed=took))


def control_buttons(lang: str, control: job_buttons.Control, *, job_id: int | None = None,
                    request_key: str | None = None) -> Buttons | None:
    """The one control a progress message carries (None when its callback_data would not fit)."""
    data = job_buttons.build(control, job_id=job_id, request_key=request_key)
    if data is None:
        return None
    key = "btn_cancel" if control is job_buttons.Control.CANCEL else "btn_stop_waiting"
    return [[(text(lang, key), data)]]


def queued_words(lang: str, title: str, position: int, estimate: str) -> str:
    """A queued job's progress message: its place (1: next) and the model's usual duration."""
    place = text(lang, "queue_next") if position <= 1 else text(lang, "queue_place", n=position,
                                                                   ordinal=english_ordinal(position))
    return text(lang, "progress_waiting", title=title, place=place, estimate=estimate)


def english_ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, …, 11th, 12th, 13th, 21st: the English place words need the number."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def estimate_words(lang: str, median_s: float | None, p90_s: float | None, prior_s: int | None,
                   elapsed: int | None) -> str:
    """How long the model usually takes: measured (its recent deliveries' median; past their 90th
    percentile it says so), or, before enough were measured, the catalogue's figure."""
    if median_s is not None and p90_s is not None:
        usual = max(1, round(median_s))
        if elapsed is not None and elapsed > p90_s:
            return text(lang, "estimate_slow", seconds=usual)
        return text(lang, "estimate_usual", seconds=usual)
    return text(lang, "estimate_about", seconds=prior_s) if prior_s else ""


def future_money_words(job: Job) -> str:
    """What stopping would do to the job's money: its hold comes back (nothing is charged)."""
    if job.price > 0:
        return text(job.lang, "money_will_return", amount=format_credits(job.price))
    return text(job.lang, "money_will_not_charge")


def money_words(job: Job) -> str:
    """What happened to the money of a job that did not deliver: its hold was released (storage:
    the job_resolves_hold trigger, in the transaction that recorded the failure)."""
    if job.price > 0:
        return text(job.lang, "money_returned", amount=format_credits(job.price))
    return text(job.lang, "money_not_charged")


def describe_failure(lang: str, failure: Failure) -> str:
    match failure.code:
        case FailureCode.KIE_FAILED:
            return kie_failure_words(lang, failure.detail)
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


def kie_failure_words(lang: str, detail: str) -> str:
    """KIE's reason in the user's language. A message bot/kie_failures.py recognises is told by
    its own sentence. A reader of KIE's language (English) also gets KIE's words, which may hold
    what the sentence cannot (a size limit, a category); in every other language an unrecognised
    message becomes a plain sentence, never English words. Either way the job keeps KIE's words
    as its detail, and the JobActor logged them, for operators."""
    reason = kie_failures.recognise(detail)
    kies_words = detail.strip() and reason is not kie_failures.KieReason.NO_RESULT     # NO_RESULT's are ours
    quoted = text(lang, "reason_kie", detail=detail) if lang == KIE_LANG and kies_words else ""
    if reason is not None:
        return f"{text(lang, reason.text_key)} {quoted}".rstrip()
    return quoted or text(lang, "reason_kie_unexplained")
