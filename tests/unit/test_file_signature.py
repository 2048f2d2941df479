"""What a file is by its first bytes (bot/file_signature.py), from small real files built here,
and how a file sent to a media step is judged by them (bot/incoming_media.py by_bytes, refusal)."""
from __future__ import annotations

import re
import zlib

import pytest

from bot import file_signature, incoming_media
from bot.file_signature import Format, identify
from bot.incoming_media import Received
from config.catalogue import InputField, load_catalogue
from sim.kie_media import mp3_bytes, mp4_bytes, png_bytes
from tests.support.sample_files import (
    adts,
    avi,
    bmp,
    ebml,
    flac,
    ftyp,
    gif,
    jpeg,
    mp3_without_tag,
    ogg,
    pdf,
    tiff,
    wav,
    webp,
)
from tests.support.wording_check import WordingCheck


# --- the signature table -------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "data", "mime", "word"), [
    ("jpeg", jpeg(), "image/jpeg", "JPEG"),
    ("png", png_bytes("signature"), "image/png", "PNG"),
    ("gif", gif(), "image/gif", "GIF"),
    ("webp", webp(), "image/webp", "WEBP"),
    ("bmp", bmp(), "image/bmp", "BMP"),
    ("tiff", tiff(), "image/tiff", "TIFF"),
    ("heic", ftyp(b"heic", b"mif1", b"heic"), "image/heic", "HEIC"),
    ("heic behind mif1", ftyp(b"mif1", b"mif1", b"heic"), "image/heic", "HEIC"),
    ("avif", ftyp(b"avif", b"mif1", b"miaf"), "image/avif", "AVIF"),
    ("heif", ftyp(b"mif1", b"mif1"), "image/heif", "HEIF"),
    ("mp4", mp4_bytes("signature"), "video/mp4", "MP4"),
    ("mp4 from a phone", ftyp(b"mp42", b"isom", b"mp42"), "video/mp4", "MP4"),
    ("mov", ftyp(b"qt  ", b"qt  "), "video/quicktime", "MOV"),
    ("3gp", ftyp(b"3gp4", b"isom", b"3gp4"), "video/3gpp", "3GP"),
    ("m4a", ftyp(b"M4A ", b"M4A ", b"mp42", b"isom"), "audio/mp4", "M4A"),
    ("webm", ebml(b"webm"), "video/webm", "WEBM"),
    ("mkv", ebml(b"matroska"), "video/x-matroska", "MKV"),
    ("avi", avi(), "video/x-msvideo", "AVI"),
    ("mp3 with an id3 tag", mp3_bytes("signature"), "audio/mpeg", "MP3"),
    ("mp3 without a tag", mp3_without_tag(), "audio/mpeg", "MP3"),
    ("aac", adts(), "audio/aac", "AAC"),
    ("wav", wav(), "audio/wav", "WAV"),
    ("ogg", ogg(), "audio/ogg", "OGG"),
    ("flac", flac(), "audio/flac", "FLAC"),
    ("pdf", pdf(), "application/pdf", "PDF"),
])
def test_each_format_is_known_by_its_first_bytes(name: str, data: bytes, mime: str, word: str) -> None:
    found = identify(data[:file_signature.HEAD_BYTES])
    assert found is not None, name
    assert (found.mime, found.word) == (mime, word)
    assert identify(data) == found        # a whole file reads the same as its head


@pytest.mark.parametrize("data", [
    b"", b"hello, world", b"\xff\xd8", b"BM" + b"\x00" * 30, b"\xff\xff\xff\xff", b"RIFF\x10\x00\x00\x00ABCD",
    b"\x1f\x8b\x08\x00", zlib.compress(b"not a media file"), b"<svg xmlns='http://www.w3.org/2000/svg'/>",
])
def test_bytes_of_no_known_format_are_named_nothing(data: bytes) -> None:
    assert identify(data) is None


@pytest.mark.parametrize(("found", "kind"), [
    (file_signature.PNG, "image"), (file_signature.MP4, "video"), (file_signature.WAV, "audio"),
    (file_signature.PDF, "file"),
])
def test_a_formats_kind_is_its_mime_types_top_level(found: Format, kind: str) -> None:
    assert found.kind == kind


# --- a sent file judged by its bytes -------------------------------------------------------------
WORDING = WordingCheck(load_catalogue())
PHOTO = {"kind": "image", "formats": ["image/jpeg", "image/png", "image/webp"], "max_size_mb": 10}
ANY_PHOTO = {"kind": "image", "formats": None, "max_size_mb": None}
VIDEO = {"kind": "video", "formats": ["video/mp4", "video/quicktime", "video/x-matroska"], "max_size_mb": 50}
AUDIO = {"kind": "audio", "formats": ["audio/mpeg", "audio/wav", "audio/x-wav", "audio/aac", "audio/mp4"],
         "max_size_mb": 10}


def document(data: bytes, mime: str | None, name: str | None) -> Received:
    """A file sent as a document, judged first by its label as `received` does."""
    return Received("document", incoming_media.kind_of(mime), "file-id", mime, name, len(data))


@pytest.mark.parametrize(("data", "mime", "name", "media", "key", "words"), [
    # the bytes win over the label, both ways
    (pdf(), "image/jpeg", "photo.jpg", PHOTO, "media_disguised",
     "Upload needs a photo, and this file is really a PDF file, whatever its name or type says. Please send a photo."),
    (png_bytes("x"), "image/gif", "loop.gif", PHOTO, None, ""),
    (png_bytes("x"), "application/octet-stream", "scan.bin", PHOTO, None, ""),
    (mp4_bytes("x"), None, "clip", VIDEO, None, ""),
    (gif(), "image/png", "sky.png", PHOTO, "media_wrong_format",
     "Upload takes JPEG, PNG, WEBP files, and this one is GIF. Please send another."),
    (ftyp(b"heic", b"mif1", b"heic"), "image/jpeg", "IMG_1.jpg", PHOTO, "media_wrong_format",
     "Upload takes JPEG, PNG, WEBP files, and this one is HEIC. Please send another."),
    # kinds
    (png_bytes("x"), "image/png", "frame.png", VIDEO, "media_wrong_kind",
     "Upload needs a video, and this is a photo. Please send a video."),
    (mp4_bytes("x"), "video/mp4", "clip.mp4", AUDIO, "media_wrong_kind",
     "Upload needs an audio file, and this is a video. Please send an audio file."),
    (wav(), "audio/x-wav", "voice.wav", AUDIO, None, ""),
    (mp3_bytes("x"), "audio/mpeg", "song.mp3", AUDIO, None, ""),
    # an MP4 container labelled as sound is sound (its first bytes cannot tell)
    (ftyp(b"mp42", b"isom"), "audio/x-m4a", "memo.m4a", AUDIO, None, ""),
    # bytes of no known format: refused where formats are listed, the label decides elsewhere
    (b"just some text", "image/jpeg", "notes.jpg", PHOTO, "media_unrecognised",
     "Upload takes JPEG, PNG, WEBP files, and this file's contents are none of them. Please send another."),
    (b"just some text", "image/jpeg", "notes.jpg", ANY_PHOTO, None, ""),
    (pdf(), "application/pdf", "invoice.pdf", PHOTO, "media_wrong_kind",
     "Upload needs a photo, and this is a PDF file. Please send a photo."),
])
def test_a_document_is_judged_by_its_bytes(data: bytes, mime: str | None, name: str | None,
                                           media: dict[str, object], key: str | None, words: str) -> None:
    file = document(data, mime, name)
    assert incoming_media.worth_reading(file, media)
    refusal = incoming_media.refusal(incoming_media.by_bytes(file, data), media)
    assert (refusal.key if refusal else None) == key
    if refusal is not None:
        field = InputField("upload", "url", True, media=media)
        assert incoming_media.refusal_words("en", field, refusal) == words
        russian = incoming_media.refusal_words("ru", field, refusal)
        formats = re.findall(r"\b[A-Z0-9]{3,4}\b", russian)      # PDF, WEBP, 3GP: written the same in Russian
        assert not WORDING.problems("ru", russian, own=[*formats, field.label("ru")])


def test_what_was_taken_carries_the_bytes_format() -> None:
    taken = incoming_media.by_bytes(document(png_bytes("x"), "image/gif", "loop.gif"), png_bytes("x"))
    assert (taken.kind, taken.mime_type, incoming_media.type_word(taken)) == ("image", "image/png", "PNG")
    memo = incoming_media.by_bytes(document(b"", "audio/x-m4a", "memo.m4a"), ftyp(b"mp42", b"isom"))
    assert (memo.kind, memo.mime_type, incoming_media.type_word(memo)) == ("audio", "audio/mp4", "M4A")


def test_a_photo_and_a_file_over_the_limit_are_not_read() -> None:
    photo = Received("photo", "image", "file-id", "image/jpeg", None, 1000)
    big = document(b"", "image/png", "huge.png")
    big = Received(big.sent_as, big.kind, big.file_id, big.mime_type, big.file_name, 11 * 1024 * 1024)
    assert not incoming_media.worth_reading(photo, PHOTO)
    assert not incoming_media.worth_reading(big, PHOTO)
    assert incoming_media.worth_reading(big, VIDEO)
    refusal = incoming_media.refusal(big, PHOTO)
    assert refusal is not None and refusal.key == "media_too_large"
