"""The bytes of the simulated KIE's generated files: small but valid PNG, MP4 and MP3.

Everything is derived from a seed string (task id + index), so the same task always yields the
same bytes and two tasks never yield the same file. The bot downloads, sniffs and forwards these
to Telegram, so they must be real files of the advertised type, not placeholders.
"""
from __future__ import annotations

import functools
import hashlib
import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# kind of model -> (file extension, Content-Type) of what the sim serves for it.
MEDIA_BY_KIND = {
    "image": ("png", "image/png"),
    "video": ("mp4", "video/mp4"),
    "audio": ("mp3", "audio/mpeg"),
}
CONTENT_TYPE_BY_EXT = dict(MEDIA_BY_KIND.values())


def _digest(seed: str) -> bytes:
    return hashlib.sha256(seed.encode("utf-8")).digest()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.lru_cache(maxsize=256)
def png_bytes(seed: str, size: int = 64) -> bytes:
    """A size x size RGB PNG: a colour and a diagonal stripe taken from `seed`, plus a tEXt chunk
    naming the seed so that even colliding colours give distinct files."""
    d = _digest(seed)
    base = d[0:3]
    stripe = bytes(255 - b for b in base)
    rows = []
    for y in range(size):
        row = bytearray(b"\x00")  # filter type None
        for x in range(size):
            row += stripe if (x + y + d[3]) % 16 < 3 else base
        rows.append(bytes(row))
    ihdr = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit truecolour, no interlace
    return (PNG_SIGNATURE + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"tEXt", b"Comment\x00kie-sim " + seed.encode("utf-8"))
            + _png_chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
            + _png_chunk(b"IEND", b""))


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _full_box(kind: bytes, version: int, flags: int, payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags) + payload)


@functools.lru_cache(maxsize=64)
def mp4_bytes(seed: str) -> bytes:
    """An ISO-BMFF stand-in: ftyp + moov(mvhd, udta) + mdat. Parsers and `file` accept it as MP4;
    it has no decodable track, which is all a bot that only forwards the file needs."""
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 0x200) + b"isomiso2mp41")
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    mvhd = _full_box(b"mvhd", 0, 0, struct.pack(">IIII", 0, 0, 1000, 1000)  # times, timescale, 1 s
                     + struct.pack(">IH", 0x10000, 0x100) + b"\x00" * 10 + matrix
                     + b"\x00" * 24 + struct.pack(">I", 2))
    udta = _box(b"udta", _box(b"\xa9cmt", ("kie-sim " + seed).encode("utf-8")))
    moov = _box(b"moov", mvhd + udta)
    mdat = _box(b"mdat", _digest(seed) * 8)
    return ftyp + moov + mdat


@functools.lru_cache(maxsize=64)
def mp3_bytes(seed: str, frames: int = 6) -> bytes:
    """An ID3v2.3 tag naming the seed, then `frames` silent MPEG-1 Layer III frames
    (128 kbit/s, 44.1 kHz, mono, 417 bytes each: about 0.16 s of silence)."""
    text = b"\x00" + ("kie-sim " + seed).encode("latin-1", "replace")
    tit2 = b"TIT2" + struct.pack(">I", len(text)) + b"\x00\x00" + text
    size = len(tit2)
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    id3 = b"ID3\x03\x00\x00" + syncsafe + tit2
    header = b"\xff\xfb\x90\xc0"  # sync, MPEG-1, Layer III, no CRC, 128k, 44100, no pad, mono
    frame_len = 144 * 128000 // 44100
    frame = header + b"\x00" * (frame_len - len(header))
    return id3 + frame * frames


def media_for(kind: str, seed: str) -> tuple[str, str, bytes]:
    """(extension, Content-Type, bytes) of the file a model of `kind` produces for `seed`.
    Images are always PNG, whatever JPEG/WebP the real model might return."""
    ext, ctype = MEDIA_BY_KIND.get(kind, MEDIA_BY_KIND["image"])
    maker = {"png": png_bytes, "mp4": mp4_bytes, "mp3": mp3_bytes}[ext]
    return ext, ctype, maker(seed)
