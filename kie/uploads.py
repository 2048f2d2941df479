"""A file a user sent in Telegram that KIE needs as a URL: a typed value in a job's input.

The wizard stores `TelegramFile(file_id).to_json()` (a small object, never a string) where a
model wants an image, video or audio; before createTask the JobActor downloads each one from
Telegram and uploads it to KIE's file host, and KIE gets the URL. Because it is an object, no
text a user types (a prompt starting with "tg:", say) can ever be mistaken for an upload.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_KEY = "telegram_file_id"
_LEGACY_PREFIX = "tg:"      # how rows written before this type stored an upload


@dataclass(frozen=True)
class TelegramFile:
    file_id: str

    def to_json(self) -> dict[str, str]:
        return {_KEY: self.file_id}

    @classmethod
    def from_json(cls, value: Any, *, legacy: bool = False) -> TelegramFile | None:
        """The upload `value` stands for, or None. `legacy`: the value sits in a field that
        takes files, where older rows stored "tg:<file_id>" strings."""
        if isinstance(value, dict) and set(value) == {_KEY} and isinstance(value[_KEY], str) and value[_KEY]:
            return cls(value[_KEY])
        if legacy and isinstance(value, str) and value.startswith(_LEGACY_PREFIX) and len(value) > len(_LEGACY_PREFIX):
            return cls(value[len(_LEGACY_PREFIX):])
        return None


def is_upload(value: Any) -> bool:
    return TelegramFile.from_json(value) is not None
