"""The simulated KIE upload host (kieai.redpandaai.co): stream, base64 and URL uploads.

Runs as its own HTTP server (KieSim.upload_url) with the same Bearer key, stores uploads in memory
and serves them publicly under /files/<uploadPath>/<fileName> until upload_ttl_s passes. Guards,
the envelope and the call log are KieSim's, so forced replies and maintenance apply here too.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import http.client
import mimetypes
import random
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from sim.kie_tasks import LOOPBACK_HOSTS

if TYPE_CHECKING:
    from sim.kie import KieSim, Reply, Request

UPLOAD_ROUTES = {
    "/api/file-stream-upload": "file-stream-upload",
    "/api/file-base64-upload": "file-base64-upload",
    "/api/file-url-upload": "file-url-upload",
}
URL_FETCH_TIMEOUT_S = 30.0
MAGIC = [(b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"),
         (b"ID3", "audio/mpeg"), (b"\xff\xfb", "audio/mpeg")]


class UploadError(Exception):
    """A refused upload: becomes an envelope with this code and message."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code, self.msg = code, msg


@dataclass
class StoredFile:
    """One uploaded file, as the upload host keeps and serves it."""

    data: bytes
    mime: str
    expires_mono: float


def sniff_mime(data: bytes, name: str) -> str:
    """The type of `data` from its first bytes, else from the file name."""
    for magic, mime in MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp":
        return "video/mp4"
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def parse_multipart(body: bytes, content_type: str) -> dict[str, tuple[str | None, str | None, bytes]]:
    """name -> (filename, part Content-Type, bytes) of a multipart/form-data body.
    Hand-rolled because the stdlib `cgi` module is deprecated (and warnings are errors here)."""
    boundary = ""
    for piece in content_type.split(";")[1:]:
        key, _, value = piece.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip('"')
    if not boundary:
        raise UploadError(400, "multipart/form-data with a boundary is required")
    fields: dict[str, tuple[str | None, str | None, bytes]] = {}
    for part in body.split(b"--" + boundary.encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, data = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        data = data.removesuffix(b"\r\n")
        name = filename = ctype = None
        for line in head.decode("utf-8", "replace").split("\r\n"):
            header, _, value = line.partition(":")
            if header.strip().lower() == "content-type":
                ctype = value.strip()
            elif header.strip().lower() == "content-disposition":
                for param in value.split(";")[1:]:
                    key, _, val = param.strip().partition("=")
                    if key == "name":
                        name = val.strip('"')
                    elif key == "filename":
                        filename = val.strip('"')
        if name is not None:
            fields[name] = (filename, ctype, data)
    return fields


def describe_bytes(data: bytes) -> dict[str, Any]:
    """What the call log keeps of uploaded bytes: their size and digest, never the bytes."""
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _iso(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class UploadHost:
    """Routes of the upload server; files keyed by uploadPath/fileName, so reusing a name overwrites."""

    def __init__(self, sim: KieSim, ttl_s: float) -> None:
        self.sim = sim
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._rng = random.Random(f"{self.sim.seed}-uploads")   # survives reset: ids never repeat
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._files: dict[str, StoredFile] = {}

    def route(self, req: Request) -> Reply:
        if req.method in ("GET", "HEAD") and req.path.startswith("/files/"):
            with self._lock:
                stored = self._files.get(unquote(req.path[len("/files/"):]))
            alive = stored is not None and time.monotonic() < stored.expires_mono
            reply = self.sim.raw_reply(200, stored.data, stored.mime) if alive and stored else \
                self.sim.raw_reply(404, b"Not Found", "text/plain")
            self.sim.log_call("upload-files", req, reply)
            return reply
        endpoint = UPLOAD_ROUTES.get(req.path) if req.method == "POST" else None
        if endpoint is None:
            reply = self.sim.envelope(404, "Not Found", None, {"success": False})
        else:
            req.logged_body = self._summary(endpoint, req)
            reply = self.sim.guard(endpoint, req, {"success": False}) or self._upload(endpoint, req)
        self.sim.log_call(endpoint or "unknown-upload", req, reply)
        return reply

    @staticmethod
    def _summary(endpoint: str, req: Request) -> Any:
        """The request as the call log keeps it, JSON-safe: file contents replaced by their
        name, size and sha256, base64 data by its length."""
        if endpoint == "file-stream-upload":
            try:
                fields = parse_multipart(req.body, req.headers.get("content-type", ""))
            except UploadError:
                return {"unparsable": describe_bytes(req.body)}
            return {name: ({"filename": f, **describe_bytes(d)} if f is not None else d.decode("utf-8", "replace"))
                    for name, (f, _, d) in fields.items()}
        body = req.json()
        if not isinstance(body, dict):
            return body
        return {k: (f"<{len(v)} chars>" if k == "base64Data" and isinstance(v, str) else v) for k, v in body.items()}

    def _upload(self, endpoint: str, req: Request) -> Reply:
        try:
            if endpoint == "file-stream-upload":
                data, mime, original, upload_path, file_name = self._from_stream(req)
            else:
                body = req.json()
                if not isinstance(body, dict):
                    raise UploadError(400, "The request body must be a JSON object")
                upload_path, file_name = body.get("uploadPath"), body.get("fileName")
                if endpoint == "file-base64-upload":
                    data, mime, original = self._from_base64(body.get("base64Data"))
                else:
                    data, mime, original = self._from_url(body.get("fileUrl"))
            return self._store(data, mime, original, upload_path, file_name)
        except UploadError as exc:
            return self.sim.envelope(exc.code, exc.msg, None, {"success": False})

    def _from_stream(self, req: Request) -> tuple[bytes, str | None, str, Any, Any]:
        fields = parse_multipart(req.body, req.headers.get("content-type", ""))
        if "file" not in fields:
            raise UploadError(400, "file is required")
        filename, ctype, data = fields["file"]
        text = {k: v[2].decode("utf-8", "replace") for k, v in fields.items() if k != "file"}
        mime = ctype if ctype and ctype != "application/octet-stream" else None
        return data, mime, filename or "", text.get("uploadPath"), text.get("fileName")

    @staticmethod
    def _from_base64(raw: Any) -> tuple[bytes, str | None, str]:
        if not isinstance(raw, str) or not raw:
            raise UploadError(400, "base64Data is required")
        mime = None
        if raw.startswith("data:"):
            header, _, raw = raw.partition(",")
            mime = header[len("data:"):].split(";")[0] or None
        try:
            return base64.b64decode(raw, validate=True), mime, ""
        except (binascii.Error, ValueError):
            raise UploadError(400, "base64Data is not valid base64") from None

    @staticmethod
    def _from_url(url: Any) -> tuple[bytes, str | None, str]:
        """Fetch from loopback only: the sim must never reach the network."""
        if not isinstance(url, str) or not url:
            raise UploadError(400, "fileUrl is required")
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS:
            raise UploadError(400, "fileUrl must be an http URL on 127.0.0.1 or localhost in the simulator")
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=URL_FETCH_TIMEOUT_S)
        try:
            conn.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise UploadError(400, f"Failed to download file from URL: {exc}") from None
        finally:
            conn.close()
        if resp.status != 200:
            raise UploadError(400, f"Failed to download file from URL: HTTP {resp.status}")
        ctype = (resp.getheader("Content-Type") or "").split(";")[0].strip() or None
        return data, ctype, unquote(parts.path.rsplit("/", 1)[-1])

    def _store(self, data: bytes, mime: str | None, original: str, upload_path: Any, file_name: Any) -> Reply:
        if not isinstance(upload_path, str) or not upload_path.strip("/"):
            raise UploadError(400, "uploadPath is required")
        if file_name is not None and (not isinstance(file_name, str) or "/" in file_name):
            raise UploadError(400, "fileName must be a plain file name")
        upload_path = upload_path.strip("/")
        with self._lock:
            file_id = f"{self._rng.getrandbits(128):032x}"
        mime = mime or sniff_mime(data, file_name or original)
        name = file_name or original or f"{file_id}{mimetypes.guess_extension(mime) or ''}"
        now = time.time()
        with self._lock:
            self._files[f"{upload_path}/{name}"] = StoredFile(data, mime, time.monotonic() + self.ttl_s)
        url = f"{self.sim.upload_url}/files/{quote(upload_path)}/{quote(name)}"
        data_out = {"fileId": file_id, "fileName": name, "originalName": original or name,
                    "fileSize": len(data), "mimeType": mime, "uploadPath": upload_path,
                    "fileUrl": url, "downloadUrl": url, "uploadTime": _iso(now),
                    "expiresAt": _iso(now + self.ttl_s)}
        return self.sim.envelope(200, "File uploaded successfully", data_out, {"success": True})
