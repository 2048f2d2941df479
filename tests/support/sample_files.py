"""Small real files of the formats users send, built in memory (libmagic's `file` names each as
its builder says): for tests of what a file is by its bytes."""
from __future__ import annotations

import io
import struct
import wave

from sim.kie_media import mp3_bytes


def jpeg() -> bytes:
    """SOI, a JFIF APP0 segment and EOI: the header every JPEG camera and editor writes."""
    app0 = b"JFIF\x00" + struct.pack(">BBBHHBB", 1, 1, 0, 1, 1, 0, 0)
    return b"\xff\xd8" + b"\xff\xe0" + struct.pack(">H", len(app0) + 2) + app0 + b"\xff\xd9"


def gif() -> bytes:
    """The classic 1x1 transparent GIF89a."""
    return (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00"
            b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")


def riff(form: bytes, chunks: bytes) -> bytes:
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + form + chunks


def chunk(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload + (b"\x00" if len(payload) % 2 else b"")


def webp() -> bytes:
    """A lossless (VP8L) 1x1 WebP header: signature 0x2f, then 14-bit width-1 and height-1."""
    return riff(b"WEBP", chunk(b"VP8L", b"\x2f" + struct.pack("<I", 0) + b"\x00\x00\x00"))


def bmp() -> bytes:
    """A 1x1 24-bit BMP: file header, BITMAPINFOHEADER, one padded pixel row."""
    info = struct.pack("<IiiHHIIiiII", 40, 1, 1, 1, 24, 0, 4, 2835, 2835, 0, 0)
    pixels = b"\x00\x00\xff\x00"
    return b"BM" + struct.pack("<IHHI", 14 + len(info) + len(pixels), 0, 0, 14 + len(info)) + info + pixels


def tiff() -> bytes:
    """A little-endian TIFF header and an empty first IFD."""
    return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 0) + struct.pack("<I", 0)


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    """An ISO base media file's first box, then an empty mdat."""
    body = major + struct.pack(">I", 0) + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + struct.pack(">I", 8) + b"mdat"


def ebml(doctype: bytes) -> bytes:
    """A Matroska/WebM EBML header (version 1, DocType, DocTypeVersion 4, DocTypeReadVersion 2)."""
    elements = (b"\x42\x86\x81\x01" + b"\x42\xf7\x81\x01" + b"\x42\xf2\x81\x04" + b"\x42\xf3\x81\x08"
                + b"\x42\x82" + bytes([0x80 | len(doctype)]) + doctype + b"\x42\x87\x81\x04" + b"\x42\x85\x81\x02")
    return b"\x1a\x45\xdf\xa3" + bytes([0x80 | len(elements)]) + elements


def avi() -> bytes:
    return riff(b"AVI ", b"LIST" + struct.pack("<I", 4) + b"hdrl")


def wav() -> bytes:
    """A tenth of a second of 8 kHz mono silence, written by the standard library."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 800)
    return out.getvalue()


def mp3_without_tag() -> bytes:
    """MPEG-1 Layer III frames with no ID3 tag before them (as many encoders write)."""
    data = mp3_bytes("no-tag")
    return data[data.index(b"\xff\xfb"):]


def ogg() -> bytes:
    """The first page of an Ogg stream (beginning of stream, one segment of an Opus head)."""
    head = b"OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00"
    return b"OggS\x00\x02" + struct.pack("<qIII", 0, 1, 0, 0) + bytes([1, len(head)]) + head


def flac() -> bytes:
    """The FLAC marker and a last-block STREAMINFO header (34 bytes of it)."""
    return b"fLaC" + bytes([0x80]) + (34).to_bytes(3, "big") + b"\x10\x00\x10\x00" + b"\x00" * 30


def adts() -> bytes:
    """One ADTS frame header of AAC-LC, 44.1 kHz, stereo (a raw .aac file)."""
    return b"\xff\xf1\x50\x80\x02\x1f\xfc" + b"\x00" * 8


def pdf() -> bytes:
    return b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
