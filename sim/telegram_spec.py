"""The Bot API's wire rules, as the Telegram simulator applies them to every request.

Owns: reading request bodies (JSON, form, multipart), coercing each parameter to the type the
spec (telegram-bot-api.json) declares, the error vocabulary (`ApiError`), inline-keyboard
limits and parse_mode formatting (HTML, MarkdownV2, Markdown) into plain text plus entities.
It keeps no state about chats, updates or files and never touches the network.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import HTTP
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

SPEC_PATH = Path(__file__).with_name("telegram-bot-api.json")
MAX_CALLBACK_DATA_BYTES = 64
FILE_FIELDS = frozenset({"photo", "video", "audio", "document", "animation", "voice",
                         "video_note", "sticker", "media"})


class ApiError(Exception):
    """A Bot API failure: the HTTP status, Telegram's description and optional parameters."""

    def __init__(self, status: int, description: str, parameters: dict[str, Any] | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def payload(self) -> dict[str, Any]:
        """The JSON body Telegram answers with."""
        body: dict[str, Any] = {"ok": False, "error_code": self.status,
                                "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(reason: str) -> ApiError:
    """400 with Telegram's "Bad Request: " prefix."""
    return ApiError(400, f"Bad Request: {reason}")


@dataclass(frozen=True)
class Upload:
    """One file part of a multipart request."""

    name: str
    filename: str
    content_type: str
    data: bytes

    def summary(self) -> dict[str, Any]:
        """A JSON-safe stand-in for transcripts."""
        return {"upload": self.filename, "size": len(self.data), "content_type": self.content_type,
                "sha256": hashlib.sha256(self.data).hexdigest()}


# ---------------------------------------------------------------- request bodies

def parse_body(content_type: str, body: bytes, query: str = "") -> tuple[dict[str, Any], dict[str, Upload]]:
    """Split a request into plain parameters and uploaded files, like the Bot API accepts them."""
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    uploads: dict[str, Upload] = {}
    kind = content_type.split(";", 1)[0].strip().lower()
    if not body.strip():
        return params, uploads
    if kind == "application/json":
        try:
            decoded = json.loads(body)
        except ValueError:
            raise bad_request("can't parse JSON encoded request body") from None
        if not isinstance(decoded, dict):
            raise bad_request("JSON encoded request body must be an object")
        params.update(decoded)
    elif kind == "multipart/form-data":
        boundary = _boundary(content_type)
        _parse_multipart(body, boundary, params, uploads)
    else:  # Telegram treats anything else as a urlencoded form
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return params, uploads


def _boundary(content_type: str) -> bytes:
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise bad_request("multipart boundary is missing")
    return match.group(1).encode("latin-1")


def _parse_multipart(body: bytes, boundary: bytes, params: dict[str, Any],
                     uploads: dict[str, Upload]) -> None:
    """Hand-rolled RFC 7578 reader: the cgi module is gone and email mangles binary parts."""
    chunks = (b"\r\n" + body).split(b"\r\n--" + boundary)
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise bad_request("can't parse multipart/form-data part")
        headers = BytesHeaderParser(policy=HTTP).parsebytes(head.lstrip(b"\r\n") + b"\r\n\r\n")
        name = headers.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        filename = headers.get_filename()
        if filename is None:
            params[name] = content.decode("utf-8", "replace")
        else:
            ctype = headers.get_content_type() if headers["content-type"] else "application/octet-stream"
            uploads[name] = Upload(name, filename, ctype, content)


# ---------------------------------------------------------------- spec-driven coercion

class Spec:
    """The Bot API methods and types as data, with Telegram's lenient-but-typed decoding."""

    def __init__(self, path: Path = SPEC_PATH) -> None:
        data = json.loads(path.read_text(encoding="utf-8"))
        self.version: str = data.get("version", "")
        self.methods: dict[str, dict[str, Any]] = data["methods"]
        self.types: dict[str, dict[str, Any]] = data["types"]
        self._by_lower = {name.lower(): name for name in self.methods}

    def method_name(self, name: str) -> str | None:
        """The canonical spelling of a method name; Telegram matches them case-insensitively."""
        return self._by_lower.get(name.lower())

    def decode(self, method: str, raw: dict[str, Any], uploads: dict[str, Upload]) -> dict[str, Any]:
        """Coerce and validate a request's parameters; unknown names are dropped like Telegram does."""
        decoded: dict[str, Any] = {}
        for field in self.methods[method].get("fields", []):
            name, types = field["name"], field["types"]
            if name in uploads and "InputFile" in types:
                decoded[name] = uploads[name]
            elif name in raw and raw[name] is not None:
                decoded[name] = self._coerce(raw[name], types, name, uploads)
            elif field["required"]:
                raise _missing(name)
        return decoded

    def check_object(self, type_name: str, value: Any) -> None:
        """Raise ApiError unless `value` fits the spec type; used to self-check our own replies."""
        self._coerce(value, [type_name], type_name, {})

    def _coerce(self, value: Any, types: list[str], where: str, uploads: dict[str, Upload]) -> Any:
        """Try each declared type in turn; the first that fits wins."""
        if len(types) > 1 and all(t.startswith("Array of ") for t in types):
            # sendMediaGroup: photos and videos may be mixed in one album
            types = ["Array of " + "|".join(t[9:] for t in types)]
        errors: list[ApiError] = []
        for type_name in _ordered(types, value):
            try:
                return self._coerce_one(value, type_name, where, uploads)
            except ApiError as exc:
                errors.append(exc)
        raise errors[0]

    def _coerce_one(self, value: Any, type_name: str, where: str, uploads: dict[str, Upload]) -> Any:
        if type_name.startswith("Array of "):
            items = _json_value(value, where)
            if not isinstance(items, list):
                raise bad_request(f'field "{where}" must be an Array')
            element_types = type_name[9:].split("|")
            return [self._coerce(item, element_types, where, uploads) for item in items]
        scalar = _SCALARS.get(type_name)
        if scalar is not None:
            return scalar(value, where)
        if type_name == "InputFile":
            if isinstance(value, Upload):
                return value
            raise bad_request(f'field "{where}" must be a file upload')
        return self._coerce_object(value, type_name, uploads)

    def _coerce_object(self, value: Any, type_name: str, uploads: dict[str, Upload]) -> Any:
        """Check required fields and coerce known ones; unknown keys pass through."""
        obj = _json_value(value, type_name)
        if not isinstance(obj, dict):
            raise bad_request(f"can't parse {type_name} JSON object")
        spec = self.types.get(type_name, {})
        if "subtypes" in spec:
            return self._coerce_subtype(obj, type_name, spec["subtypes"], uploads)
        out: dict[str, Any] = dict(obj)
        for field in spec.get("fields", []):
            name = field["name"]
            if name in obj and obj[name] is not None:
                out[name] = self._coerce(obj[name], field["types"], name, uploads)
            elif field["required"]:
                raise bad_request(f'can\'t parse {type_name}: field "{name}" must be present')
        return out

    def _coerce_subtype(self, obj: dict[str, Any], parent: str, subtypes: list[str],
                        uploads: dict[str, Upload]) -> Any:
        """Abstract types (InputMedia, BotCommandScope...) resolve by their 'type' tag."""
        tag = obj.get("type", obj.get("source", obj.get("status")))
        candidates = [s for s in subtypes if self._discriminator(s) in (None, tag)]
        for subtype in candidates:
            try:
                return self._coerce_object(obj, subtype, uploads)
            except ApiError:
                continue
        raise bad_request(f"can't parse {parent}: unsupported type {tag!r}")

    def _discriminator(self, type_name: str) -> str | None:
        """The tag value a subtype's description promises ('must be photo')."""
        for field in self.types[type_name].get("fields", []):
            if field["name"] in ("type", "source", "status"):
                match = re.search(r'(?:must be|always) "?([a-z_]+)', field["description"])
                return match.group(1) if match else None
        return None


def _ordered(types: list[str], value: Any) -> list[str]:
    """Try InputFile first for uploads, and String last so "123" becomes an Integer chat id."""
    if isinstance(value, Upload):
        return [t for t in types if t == "InputFile"] or types
    return [t for t in types if t != "String"] + [t for t in types if t == "String"]


def _json_value(value: Any, where: str) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise bad_request(f"can't parse {where} JSON object") from None
    return value


def _as_integer(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise bad_request(f'field "{where}" must be an Integer')


def _as_float(value: Any, where: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise bad_request(f'field "{where}" must be a Float')


def _as_boolean(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise bad_request(f'field "{where}" must be a Boolean')


def _as_string(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise bad_request(f'field "{where}" must be a String')


_SCALARS = {"Integer": _as_integer, "Float": _as_float, "Boolean": _as_boolean,
            "String": _as_string, "True": _as_boolean}


def _missing(name: str) -> ApiError:
    """Telegram's wording for an absent required parameter."""
    if name == "text":
        return bad_request("message text is empty")
    if name in FILE_FIELDS:
        return bad_request(f"there is no {name} in the request")
    if name.endswith("_id"):
        return bad_request(f"{name} is empty")
    return bad_request(f'parameter "{name}" is required')


# ---------------------------------------------------------------- semantic limits

def check_inline_keyboard(markup: dict[str, Any] | None) -> None:
    """Telegram's per-button rules: one action per button, callback_data 1-64 bytes, valid URLs."""
    if not markup or "inline_keyboard" not in markup:
        return
    actions = ("url", "callback_data", "web_app", "login_url", "switch_inline_query",
               "switch_inline_query_current_chat", "switch_inline_query_chosen_chat",
               "copy_text", "callback_game", "pay")
    for row in markup["inline_keyboard"]:
        for button in row:
            if not any(key in button for key in actions):
                raise bad_request("can't parse inline keyboard button: "
                                  "Text buttons are unallowed in the inline keyboard")
            data = button.get("callback_data")
            if data is not None and not 1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES:
                raise bad_request("BUTTON_DATA_INVALID")
            url = button.get("url")
            if url is not None and not re.match(r"(https?|tg)://[^\s]+$", url):
                raise bad_request(f"inline keyboard button URL '{url}' is invalid: Wrong HTTP URL")


# ---------------------------------------------------------------- parse_mode formatting

def format_text(text: str, parse_mode: str | None,
                entities: list[dict[str, Any]] | None = None) -> tuple[str, list[dict[str, Any]]]:
    """Turn text plus parse_mode into what the user sees: plain text and MessageEntity dicts.

    Offsets and lengths are in UTF-16 code units, leading and trailing whitespace is trimmed,
    and malformed markup fails with "can't parse entities" like Telegram.
    """
    mode = (parse_mode or "").lower()
    if mode == "html":
        plain, found = _parse_html(text)
    elif mode == "markdownv2":
        plain, found = _parse_markdown(text, v2=True)
    elif mode == "markdown":
        plain, found = _parse_markdown(text, v2=False)
    elif mode:
        raise bad_request(f"unsupported parse_mode {parse_mode!r}")
    else:
        plain, found = text, [dict(e) for e in entities or []]
    return _trim(plain, found)


def utf16_len(text: str) -> int:
    """Telegram measures entity offsets in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _entities_error(reason: str) -> ApiError:
    return bad_request(f"can't parse entities: {reason}")


class _Out:
    """Accumulates plain text while tracking its UTF-16 length."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.offset = 0

    def add(self, chunk: str) -> None:
        self.parts.append(chunk)
        self.offset += utf16_len(chunk)

    def text(self) -> str:
        return "".join(self.parts)


def _entity(kind: str, start: int, end: int, **extra: Any) -> dict[str, Any] | None:
    if end <= start:
        return None
    return {"type": kind, "offset": start, "length": end - start, **extra}


def _sorted(entities: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
    real = [e for e in entities if e]
    return sorted(real, key=lambda e: (e["offset"], -e["length"]))


def _trim(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Telegram strips surrounding whitespace and clips entities to what remains."""
    stripped = text.strip()
    if stripped == text:
        return text, _sorted(list(entities))
    lead = utf16_len(text[: len(text) - len(text.lstrip())])
    size = utf16_len(stripped)
    kept: list[dict[str, Any] | None] = []
    for entity in entities:
        start = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] + entity["length"] - lead, size)
        kept.append({**entity, "offset": start, "length": end - start} if end > start else None)
    return stripped, _sorted(kept)


_HTML_KINDS = {"b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
               "ins": "underline", "s": "strikethrough", "strike": "strikethrough",
               "del": "strikethrough", "tg-spoiler": "spoiler", "span": "spoiler",
               "a": "text_link", "code": "code", "pre": "pre", "blockquote": "blockquote",
               "tg-emoji": "custom_emoji"}
_HTML_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_CHAR_REF = re.compile(r"&(#[xX][0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);")
_ATTR = re.compile(r"""\s*([a-zA-Z_:-]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>"']+))?""")


def _parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    """A port of the Bot API's HTML rules: a fixed tag set, and every bare '<' is an error."""
    stack: list[tuple[str, int, dict[str, str]]] = []  # (tag, start, attrs)
    out, found, i = _Out(), [], 0
    while i < len(text):
        char = text[i]
        if char == "&":
            i = _html_char_ref(text, i, out)
            continue
        if char != "<":
            out.add(char)
            i += 1
            continue
        at = len(text[:i].encode("utf-8"))
        if text.startswith("</", i):
            end = text.find(">", i)
            if end < 0:
                raise _entities_error(f"Unclosed end tag at byte offset {at}")
            name = text[i + 2:end].strip().lower()
            if not stack:
                raise _entities_error(f'Unexpected end tag at byte offset {at}')
            tag, start, attrs = stack.pop()
            if name and name != tag:
                raise _entities_error(f'Unmatched end tag at byte offset {at}, '
                                      f'expected "</{tag}>", found "</{name}>"')
            found.append(_html_entity(tag, attrs, start, out.offset, stack))
            i = end + 1
            continue
        tag, attrs, i = _html_start_tag(text, i, at)
        stack.append((tag, out.offset, attrs))
    if stack:
        raise _entities_error(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return out.text(), _sorted(found)


def _html_char_ref(text: str, i: int, out: _Out) -> int:
    """&lt; &gt; &amp; &quot; and numeric references; an unknown one stays literal."""
    match = _CHAR_REF.match(text, i)
    if not match:
        out.add("&")
        return i + 1
    ref = match.group(1)
    if ref.startswith(("#x", "#X")):
        out.add(chr(int(ref[2:], 16)))  # noqa: FURB166 - the prefix is "#x", which int() does not know
    elif ref.startswith("#"):
        out.add(chr(int(ref[1:])))
    elif ref.lower() in _HTML_NAMED:
        out.add(_HTML_NAMED[ref.lower()])
    else:
        out.add(match.group(0))
    return match.end()


def _html_start_tag(text: str, i: int, at: int) -> tuple[str, dict[str, str], int]:
    """Parse '<tag attr=...>' at i; only Telegram's tag set is allowed."""
    match = re.compile(r"<([^\s>]*)").match(text, i)
    assert match is not None
    tag, j = match.group(1).lower(), match.end()
    if tag not in _HTML_KINDS:
        raise _entities_error(f'Unsupported start tag "{tag}" at byte offset {at}')
    attrs: dict[str, str] = {}
    while True:
        if j >= len(text):
            raise _entities_error(f"Unclosed start tag at byte offset {at}")
        if text[j] == ">":
            break
        attr = _ATTR.match(text, j)
        if not attr or attr.end() == j:
            raise _entities_error(f"Expected equal sign in declaration of an attribute of the "
                                  f"tag at byte offset {at}")
        raw = (attr.group(2) or "").strip("\"'")
        decoded = _Out()
        k = 0
        while k < len(raw):
            if raw[k] == "&":
                k = _html_char_ref(raw, k, decoded)
            else:
                decoded.add(raw[k])
                k += 1
        attrs[attr.group(1).lower()] = decoded.text()
        j = attr.end()
    if tag == "span" and attrs.get("class") != "tg-spoiler":
        raise _entities_error('Tag "span" must have class "tg-spoiler"')
    return tag, attrs, j + 1


def _html_entity(tag: str, attrs: dict[str, str], start: int, end: int,
                 stack: list[tuple[str, int, dict[str, str]]]) -> dict[str, Any] | None:
    """The MessageEntity a closed tag produces (<pre><code class> sets a language)."""
    kind = _HTML_KINDS[tag]
    if tag == "a":
        return _entity(kind, start, end, url=attrs["href"]) if attrs.get("href") else None
    if tag == "code" and stack and stack[-1][0] == "pre":
        language = attrs.get("class", "")
        if language.startswith("language-"):
            stack[-1][2]["language"] = language[9:]
        return None
    if tag == "pre" and attrs.get("language"):
        return _entity(kind, start, end, language=attrs["language"])
    if tag == "blockquote" and "expandable" in attrs:
        return _entity("expandable_blockquote", start, end)
    if tag == "tg-emoji":
        return _entity(kind, start, end, custom_emoji_id=attrs.get("emoji-id", ""))
    return _entity(kind, start, end)


_MD2_RESERVED = set("_*[]()~`>#+-=|{}.!")
_MD2_MARKS = [("```", "pre"), ("`", "code"), ("||", "spoiler"), ("__", "underline"),
              ("*", "bold"), ("_", "italic"), ("~", "strikethrough"), ("[", "text_link")]
_MD1_MARKS = [("```", "pre"), ("`", "code"), ("*", "bold"), ("_", "italic"), ("[", "text_link")]
_LINK_TARGET = re.compile(r"\(((?:\\.|[^)\\])*)\)")


@dataclass
class _Open:
    """An entity whose closing mark has not been seen yet."""

    kind: str
    closer: str
    start: int  # UTF-16 offset in the output
    at: int  # byte offset in the input, for error messages
    language: str = ""


def _parse_markdown(text: str, v2: bool) -> tuple[str, list[dict[str, Any]]]:
    """MarkdownV2 (nesting, reserved characters) or legacy Markdown (flat, lenient)."""
    out, stack, found, i = _Out(), list[_Open](), list[dict[str, Any] | None](), 0
    marks = _MD2_MARKS if v2 else _MD1_MARKS
    while i < len(text):
        char, top = text[i], (stack[-1] if stack else None)
        if char == "\\" and i + 1 < len(text) and 0 < ord(text[i + 1]) <= 126 \
                and (v2 or text[i + 1] in "_*`["):
            out.add(text[i + 1])
            i += 2
        elif top and text.startswith(top.closer, i):
            stack.pop()
            i = _close_markdown(text, i + len(top.closer), top, out, found)
        elif top and top.kind in ("code", "pre"):
            out.add(char)
            i += 1
        elif (mark := next((m for m in marks if text.startswith(m[0], i)), None)) \
                and (v2 or not stack):
            i = _open_markdown(text, i, mark, out, stack)
        elif v2 and char == ">" and (i == 0 or text[i - 1] == "\n"):
            stack.append(_Open("blockquote", "\n", out.offset, _byte_offset(text, i)))
            i += 1
        elif v2 and char in _MD2_RESERVED:
            raise _entities_error(f"Character '{char}' is reserved and must be escaped with "
                                  "the preceding '\\'")
        else:
            out.add(char)
            i += 1
    if stack and stack[-1].kind == "blockquote":
        found.append(_entity("blockquote", stack.pop().start, out.offset))
    if stack:
        name = stack[-1].kind.replace("_", " ").title().replace(" ", "")
        raise _entities_error(f"Can't find end of {name} entity at byte offset {stack[-1].at}"
                              if v2 else "Can't find end of the entity starting at byte offset "
                              f"{stack[-1].at}")
    return out.text(), _merge_blockquotes(_sorted(found))


def _byte_offset(text: str, i: int) -> int:
    return len(text[:i].encode("utf-8"))


def _open_markdown(text: str, i: int, mark: tuple[str, str], out: _Out, stack: list[_Open]) -> int:
    """Push an entity; ``` may carry a language on its first line."""
    token, kind = mark
    opened = _Open(kind, "]" if kind == "text_link" else token, out.offset, _byte_offset(text, i))
    i += len(token)
    if kind == "pre":
        newline = text.find("\n", i)
        if newline >= 0 and re.fullmatch(r"[\w+#.-]+", text[i:newline]):
            opened.language, i = text[i:newline], newline + 1
    stack.append(opened)
    return i


def _close_markdown(text: str, i: int, top: _Open, out: _Out,
                    found: list[dict[str, Any] | None]) -> int:
    """Pop an entity; a link needs its (url) right after ']'."""
    if top.kind == "blockquote":
        found.append(_entity("blockquote", top.start, out.offset))
        out.add("\n")
    elif top.kind == "text_link":
        match = _LINK_TARGET.match(text, i)
        if match:
            url = re.sub(r"\\(.)", r"\1", match.group(1))
            found.append(_entity("text_link", top.start, out.offset, url=url))
            return match.end()
    elif top.language:
        found.append(_entity("pre", top.start, out.offset, language=top.language))
    else:
        found.append(_entity(top.kind, top.start, out.offset))
    return i


def _merge_blockquotes(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive '>' lines form one quote."""
    merged: list[dict[str, Any]] = []
    for entity in entities:
        last = merged[-1] if merged else None
        if last and entity["type"] == last["type"] == "blockquote" \
                and last["offset"] + last["length"] + 1 == entity["offset"]:
            last["length"] += entity["length"] + 1
        else:
            merged.append(entity)
    return merged
