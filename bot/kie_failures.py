"""KIE's own failure messages, recognised: which known reason a `kie_failed` detail stands for,
so the bot can tell it in the user's language (config/texts.py, `reason_kie_<reason>`).

A leaf table, read only when a failure is worded: it never changes what is stored (the job keeps
KIE's text as its detail, for operators) and never words anything itself. A message it does not
recognise is None, and the presenter decides what to say instead.
"""
from __future__ import annotations

import enum
import re


class KieReason(str, enum.Enum):
    """Why KIE failed a task, as far as its message tells; the value names the text key."""

    CONTENT_POLICY = "content_policy"       # refused by a content or safety filter
    ENGLISH_ONLY = "english_only"           # the model takes English prompts only
    PROMPT_TOO_LONG = "prompt_too_long"
    FILE_SIZE = "file_size"                 # an image or file too large, or of a size not accepted
    UNREADABLE_FILE = "unreadable_file"     # a format it does not take, or a file it could not read
    PROVIDER_CREDITS = "provider_credits"   # the provider's own credits ran short
    TIMEOUT = "timeout"                     # the provider gave up waiting
    BUSY = "busy"                           # overloaded, rate-limited, in maintenance: try later
    SERVER_ERROR = "server_error"           # the provider's internal error
    MODEL_UNAVAILABLE = "model_unavailable"  # the model or feature is switched off at KIE
    BAD_INPUT = "bad_input"                 # a parameter it would not accept
    NO_RESULT = "no_result"                 # finished without a result (actors/decisions.py)

    @property
    def text_key(self) -> str:
        return f"reason_kie_{self.value}"


# Fragments of KIE's messages, matched case-insensitively on the message with "_" and "-" read
# as spaces (so CONTENT_POLICY_BLOCKED and SENSITIVE_WORD_ERROR match too). The first rule with a
# fragment in the message wins, so the specific rules come before the broad ones (an "invalid
# image format" is an unreadable file before it is bad input). Sources: shared/reference/kie-api.md
# (body codes and their messages), KIE's 4o, Veo and Suno pages, and failMsg values seen from KIE.
RULES: tuple[tuple[KieReason, tuple[str, ...]], ...] = (
    (KieReason.CONTENT_POLICY, (
        "content polic",            # "Your prompt was flagged by Website as violating content policies"
        "flagged",                  # "Your content was flagged by OpenAI as violating content policies"
        "sensitive",                # SENSITIVE_WORD_ERROR; "the input was flagged as sensitive"
        "nsfw", "prohibited", "violat", "unsafe", "safety", "moderation", "inappropriate",
        "sexual", "explicit content", "public figure", "prominent people", "copyright",
    )),
    (KieReason.ENGLISH_ONLY, (
        "only english",             # "Only English prompts are supported at this time."
        "english prompt", "non english",
    )),
    (KieReason.PROMPT_TOO_LONG, (
        "prompt is too long",       # "prompt is too long: 1200 characters, at most 1000" (422)
        "prompt too long", "prompt exceeds", "prompt length", "text is too long", "too many characters",
    )),
    (KieReason.FILE_SIZE, (
        "too large",                # "Payload too large"
        "exceeds maximum",          # "Image size exceeds maximum of 26214400 bytes"
        "exceeds the maximum", "too big", "file size", "image size", "size exceeds", "too small",
        "dimension", "wrong size", "aspect ratio of the image",
    )),
    (KieReason.UNREADABLE_FILE, (
        "invalid image",            # "We couldn't process the provided image file (code=invalid_image_format)"
        "process the provided image",
        "failed to fetch",          # 451: "Failed to fetch the image. Kindly verify any access limits …"
        "unable to download", "download failed", "failed to download", "could not download",
        "unsupported format", "unsupported file", "unsupported image", "unsupported media",
        "format not supported", "file type", "cannot decode", "could not decode", "failed to decode",
        "corrupt", "unreadable", "not a valid image", "cannot read the image", "could not read the image",
    )),
    (KieReason.PROVIDER_CREDITS, (
        "credits insufficient",     # 402: "Credits insufficient"
        "insufficient credit", "insufficient balance", "not enough credit", "insufficient funds",
        "balance is not enough", "balance insufficient",
    )),
    (KieReason.TIMEOUT, (
        "timeout",                  # 408: "Request timeout"
        "timed out", "time out", "took too long", "taking too long", "time limit",
    )),
    (KieReason.BUSY, (
        "try again later",          # "Internal Error, Please try again later."
        "busy", "overload", "high demand", "capacity", "too many requests", "rate limit",
        "maintenance",              # 455: "Service unavailable: the system is under maintenance"
        "temporarily unavailable", "service unavailable",
    )),
    (KieReason.SERVER_ERROR, (
        "internal error",           # failCode 500: "Internal error"
        "server error", "unexpected error", "system error",
    )),
    (KieReason.MODEL_UNAVAILABLE, (
        "does not exist or is not published",   # 422 for a model KIE no longer offers
        "feature disabled",                     # 505
        "model not found",
    )),
    (KieReason.BAD_INPUT, (
        "invalid",                  # "Invalid parameter …"
        "validation",               # 422: "Validation error"
        "bad request",              # 400
        "parameter", "is required", "must be", "is not a field of", "not supported", "unsupported",
        "missing",
    )),
    (KieReason.NO_RESULT, (
        "without a result",         # actors/decisions.py NO_RESULT
        "no result", "result is empty", "empty result",
    )),
)

# A failure KIE gave without a message is stored as "error <failCode>" (actors/decisions.py,
# kie/answers.py); its code then says what the message would have. 400 and 501 say only "bad
# request" or "generation failed", so they stay unrecognised.
CODES: dict[str, KieReason] = {
    "402": KieReason.PROVIDER_CREDITS,
    "408": KieReason.TIMEOUT,
    "413": KieReason.FILE_SIZE,
    "422": KieReason.BAD_INPUT,
    "429": KieReason.BUSY,
    "451": KieReason.UNREADABLE_FILE,
    "455": KieReason.BUSY,
    "500": KieReason.SERVER_ERROR,
    "503": KieReason.BUSY,
    "505": KieReason.MODEL_UNAVAILABLE,
}

CODE_ONLY = re.compile(r"error (\S+)")
SEPARATORS = re.compile(r"[\s_\-]+")


def recognise(detail: str) -> KieReason | None:
    """The known reason in a `kie_failed` detail (KIE's failMsg, or "error <failCode>"), or None."""
    plain = SEPARATORS.sub(" ", detail.replace("\u2019", "'")).strip().lower()
    if not plain:
        return None
    only_code = CODE_ONLY.fullmatch(detail.strip().lower())
    if only_code and only_code.group(1) in CODES:
        return CODES[only_code.group(1)]
    return next((reason for reason, fragments in RULES if any(f in plain for f in fragments)), None)
