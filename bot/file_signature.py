"""What a file is, by its first bytes: the formats users send to a media step, and PDF to name it.

`identify(head)` reads at most HEAD_BYTES from the start of a file and names its format (a MIME
type and a word for people: "image/png", "PNG"), or None for anything it does not know. A label
(a MIME type, a file name) is never consulted here; the caller weighs the two. Pure: no I/O, and
nothing from the project is imported.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

HEAD_BYTES = 64     # enough for an ftyp box's brands and a Matroska header's DocType


@dataclass(frozen=True)
class Format:
    """A format recognised by its bytes. `alike`: MIME types the same bytes may equally be (an
    MP4 container's first bytes cannot tell sound-only from video)."""

    mime: str
    word: str
    alike: frozenset[str] = frozenset()

    @property
    def kind(self) -> str:
        """image, video or audio by the MIME type's top level; file for anything else."""
        top = self.mime.split("/", 1)[0]
        return top if top in ("image", "video", "audio") else "file"


JPEG = Format("image/jpeg", "JPEG")
PNG = Format("image/png", "PNG")
GIF = Format("image/gif", "GIF")
WEBP = Format("image/webp", "WEBP")
BMP = Format("image/bmp", "BMP")
TIFF = Format("image/tiff", "TIFF")
HEIC = Format("image/heic", "HEIC")
HEIF = Format("image/heif", "HEIF")
AVIF = Format("image/avif", "AVIF")
MP4 = Format("video/mp4", "MP4", frozenset({"audio/mp4"}))
MOV = Format("video/quicktime", "MOV")
THREE_GP = Format("video/3gpp", "3GP", frozenset({"audio/3gpp"}))
WEBM = Format("video/webm", "WEBM", frozenset({"audio/webm"}))
MKV = Format("video/x-matroska", "MKV", frozenset({"audio/x-matroska"}))
AVI = Format("video/x-msvideo", "AVI")
MP3 = Format("audio/mpeg", "MP3")
AAC = Format("audio/aac", "AAC")
M4A = Format("audio/mp4", "M4A")
WAV = Format("audio/wav", "WAV")
OGG = Format("audio/ogg", "OGG", frozenset({"video/ogg"}))
FLAC = Format("audio/flac", "FLAC")
PDF = Format("application/pdf", "PDF")

# Plain prefixes, checked in order.
_PREFIXES: tuple[tuple[bytes, Format], ...] = (
    (b"\xff\xd8\xff", JPEG),
    (b"\x89PNG\r\n\x1a\n", PNG),
    (b"GIF87a", GIF),
    (b"GIF89a", GIF),
    (b"II*\x00", TIFF),
    (b"MM\x00*", TIFF),
    (b"%PDF-", PDF),
    (b"OggS", OGG),
    (b"fLaC", FLAC),
    (b"ID3", MP3),              # an ID3v2 tag, then MPEG audio frames
)
_RIFF = {b"WEBP": WEBP, b"WAVE": WAV, b"AVI ": AVI}
# ISO base media (ftyp) brands that name a format; any other brand is a plain MP4.
_BRANDS = {
    **dict.fromkeys((b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis"), HEIC),
    **dict.fromkeys((b"avif", b"avis"), AVIF),
    **dict.fromkeys((b"M4A ", b"M4B ", b"M4P ", b"F4A "), M4A),
    b"qt  ": MOV,
    **dict.fromkeys((b"3gp4", b"3gp5", b"3gp6", b"3g2a"), THREE_GP),
}
_GENERIC_STILL = (b"mif1", b"msf1")    # HEIF's own brands: a still image unless a brand says more
_BMP_HEADER_SIZES = (12, 16, 40, 52, 56, 64, 108, 124)


def identify(head: bytes) -> Format | None:
    """The format whose signature `head` (a file's first bytes) starts with, or None."""
    head = head[:HEAD_BYTES]
    for prefix, found in _PREFIXES:
        if head.startswith(prefix):
            return found
    if head[:4] == b"RIFF" and len(head) >= 12:
        return _RIFF.get(head[8:12])
    if head[4:8] == b"ftyp" and len(head) >= 12:
        return _iso_media(head)
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return WEBM if b"webm" in head else MKV
    if head.startswith(b"BM") and len(head) >= 18 and struct.unpack("<I", head[14:18])[0] in _BMP_HEADER_SIZES:
        return BMP
    return _mpeg_frame(head)


def _iso_media(head: bytes) -> Format:
    """An ftyp box: its major brand, then its compatible brands, decide; MP4 when none does."""
    size = struct.unpack(">I", head[:4])[0]
    end = min(max(size, 12), len(head))
    brands = [head[8:12], *(head[i:i + 4] for i in range(16, end - 3, 4))]
    for brand in brands:
        if brand in _BRANDS:
            return _BRANDS[brand]
    return HEIF if any(b in _GENERIC_STILL for b in brands) else MP4


def _mpeg_frame(head: bytes) -> Format | None:
    """An MPEG audio frame header (MP3 without a tag) or an ADTS header (raw AAC)."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    version, layer = (head[1] >> 3) & 0b11, (head[1] >> 1) & 0b11
    if layer == 0:
        return AAC if head[1] & 0xF6 == 0xF0 else None
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 0b11
    if version == 0b01 or bitrate == 0b1111 or rate == 0b11:
        return None
    return MP3
