"""KIE's failure messages, recognised from a table (bot/kie_failures.py) and told in the user's
language (bot/presenter.py): the messages KIE sends (shared/reference/kie-api.md, its 4o, Veo and
Suno pages, the simulator's) map to known reasons whatever their case or spelling of separators,
a failure with only a failCode is read by its code, every reason has words in every language, and
a Russian screen never carries KIE's English, recognised or not."""
from __future__ import annotations

import pytest

from actors.decisions import NO_RESULT
from actors.outcomes import Failure, FailureCode
from bot.kie_failures import CODES, KieReason, recognise
from bot.presenter import describe_failure, kie_failure_words
from config.catalogue import load_catalogue
from config.texts import LANGS, TEXTS, text
from tests.support.wording_check import WordingCheck

CHECK = WordingCheck(load_catalogue())
R = KieReason

KNOWN = [
    # content and safety refusals
    ("Your prompt was flagged by Website as violating content policies.", R.CONTENT_POLICY),
    ("Your content was flagged by OpenAI as violating content policies", R.CONTENT_POLICY),
    ("The image content in filesUrl violates content policy", R.CONTENT_POLICY),
    ("CONTENT_POLICY_BLOCKED: the input was flagged as sensitive.", R.CONTENT_POLICY),
    ("Content policy violation", R.CONTENT_POLICY),
    ("content policy", R.CONTENT_POLICY),
    ("public error unsafe image upload.", R.CONTENT_POLICY),
    ("NSFW content detected", R.CONTENT_POLICY),
    ("Prohibited content in the prompt", R.CONTENT_POLICY),
    ("error SENSITIVE_WORD_ERROR", R.CONTENT_POLICY),          # a text failCode without a failMsg
    ("SENSITIVE_WORD_ERROR", R.CONTENT_POLICY),
    # the model takes English only
    ("Only English prompts are supported at this time.", R.ENGLISH_ONLY),
    # the prompt is too long
    ("prompt is too long: 1200 characters, at most 1000", R.PROMPT_TOO_LONG),
    ("Prompt exceeds 5000 characters", R.PROMPT_TOO_LONG),
    # the file is too large or of a size not taken
    ("Image size exceeds maximum of 26214400 bytes", R.FILE_SIZE),
    ("File too large", R.FILE_SIZE),
    ("Image dimensions must be between 300 and 4096 pixels", R.FILE_SIZE),
    # a format not taken, or a file that could not be read
    ("We couldn't process the provided image file (code=invalid_image_format)", R.UNREADABLE_FILE),
    ("We couldn\u2019t process the provided image file", R.UNREADABLE_FILE),
    ("Failed to fetch the image. Kindly verify any access limits set by you or your service provider.",
     R.UNREADABLE_FILE),
    ("Download Failed - Unable to download image from the provided filesUrl", R.UNREADABLE_FILE),
    ("Unsupported image format: image/heic", R.UNREADABLE_FILE),
    # the provider's own credits
    ("Credits insufficient", R.PROVIDER_CREDITS),
    ("Insufficient credits for this task", R.PROVIDER_CREDITS),
    # timeout
    ("Request timeout", R.TIMEOUT),
    ("Generation timed out", R.TIMEOUT),
    ("The upstream took too long to respond", R.TIMEOUT),
    # busy: overloaded, rate-limited, in maintenance
    ("Internal Error, Please try again later.", R.BUSY),
    ("Server is busy, please retry", R.BUSY),
    ("The model is overloaded", R.BUSY),
    ("Rate limit exceeded, please try again later", R.BUSY),
    ("Service unavailable: the system is under maintenance", R.BUSY),
    # the provider's internal error
    ("Internal error", R.SERVER_ERROR),
    ("Server Error - An unexpected error occurred while processing the request", R.SERVER_ERROR),
    # the model is gone at KIE
    ("The page does not exist or is not published", R.MODEL_UNAVAILABLE),
    ("Feature disabled", R.MODEL_UNAVAILABLE),
    # a parameter it would not take
    ("Validation error", R.BAD_INPUT),
    ("Invalid parameter: aspect_ratio", R.BAD_INPUT),
    ("aspect_ratio must be one of: 1:1, 16:9", R.BAD_INPUT),
    ("image_urls is required", R.BAD_INPUT),
    ("Bad request", R.BAD_INPUT),
    # ours: finished without a result
    (NO_RESULT, R.NO_RESULT),
    # only a failCode
    ("error 402", R.PROVIDER_CREDITS),
    ("error 408", R.TIMEOUT),
    ("error 413", R.FILE_SIZE),
    ("error 422", R.BAD_INPUT),
    ("error 429", R.BUSY),
    ("error 451", R.UNREADABLE_FILE),
    ("error 455", R.BUSY),
    ("error 500", R.SERVER_ERROR),
    ("error 505", R.MODEL_UNAVAILABLE),
]

UNKNOWN = ["boom", "no", "Generation failed", "error 501", "error 400", "Image processing failed: insufficient detail",
           "the matrix refused this one", "x" * 4156, "", "   "]


@pytest.mark.parametrize(("message", "reason"), KNOWN)
def test_a_message_kie_sends_is_recognised_as_its_reason(message: str, reason: KieReason) -> None:
    assert recognise(message) is reason


@pytest.mark.parametrize(("message", "reason"), KNOWN[:6])
def test_case_and_separators_do_not_matter(message: str, reason: KieReason) -> None:
    assert recognise(message.upper()) is reason
    assert recognise(message.lower().replace(" ", "_")) is reason


@pytest.mark.parametrize("message", UNKNOWN)
def test_a_message_that_says_nothing_known_is_not_recognised(message: str) -> None:
    assert recognise(message) is None


def test_every_code_and_every_reason_is_reachable() -> None:
    assert {recognise(f"error {code}") for code in CODES} <= set(KieReason)
    assert {reason for _, reason in KNOWN} == set(KieReason)


@pytest.mark.parametrize("reason", list(KieReason))
def test_every_reason_has_words_in_every_language(reason: KieReason) -> None:
    assert set(TEXTS[reason.text_key]) == set(LANGS)
    assert text("en", reason.text_key) != text("ru", reason.text_key)
    assert CHECK.problems("ru", text("ru", reason.text_key)) == []


@pytest.mark.parametrize(("message", "reason"), KNOWN)
def test_a_recognised_message_is_told_to_a_russian_user_in_russian_only(message: str, reason: KieReason) -> None:
    words = describe_failure("ru", Failure(FailureCode.KIE_FAILED, message))
    assert words == text("ru", reason.text_key)
    assert CHECK.problems("ru", words) == []


@pytest.mark.parametrize("message", UNKNOWN)
def test_an_unrecognised_message_is_a_plain_russian_sentence_for_a_russian_user(message: str) -> None:
    words = kie_failure_words("ru", message)
    assert words == text("ru", "reason_kie_unexplained")
    assert CHECK.problems("ru", words) == []


def test_an_english_user_still_reads_kies_words() -> None:
    assert kie_failure_words("en", "boom") == "The service said: boom"
    recognised = kie_failure_words("en", "Image size exceeds maximum of 26214400 bytes")
    assert recognised.startswith(text("en", R.FILE_SIZE.text_key))
    assert recognised.endswith("The service said: Image size exceeds maximum of 26214400 bytes")


def test_our_own_no_result_words_are_not_quoted_as_kies() -> None:
    assert kie_failure_words("en", NO_RESULT) == text("en", R.NO_RESULT.text_key)
