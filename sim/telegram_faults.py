"""How the Telegram simulator refuses requests before performing them: faults and flood limits.

Owns: scripted misbehaviour per method (failures with Telegram's wording, swallowed responses,
reset connections, calls spared from the script, delays, groups upgraded to supergroups) and
Telegram's flood-control token buckets. Both answer with an `ApiError`; the caller decides when
to consult them and holds the simulator's lock while doing so.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sim.telegram_spec import ApiError

_FAULT_TEXT = {400: "Bad Request: simulated failure", 403: "Forbidden: bot was blocked by the user",
               500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


@dataclass
class Failure:
    """One scripted failure: its status, Retry-After seconds (429) and optional wording."""

    status: int
    retry_after: int
    description: str | None


@dataclass
class Faults:
    """Scripted misbehaviour, consumed per method."""

    failures: dict[str, deque[Failure]] = field(default_factory=lambda: defaultdict(deque))
    drops: Counter[str] = field(default_factory=Counter)
    delays: dict[str, float] = field(default_factory=dict)
    migrated: dict[int, int] = field(default_factory=dict)   # old group id -> its supergroup's id
    resets: dict[str, deque[bool]] = field(default_factory=lambda: defaultdict(deque))  # performed first?
    spares: Counter[str] = field(default_factory=Counter)

    def take_spare(self, method: str) -> bool:
        """Whether this call is let through untouched by the scripted faults (delays still apply)."""
        if self.spares[method] <= 0:
            return False
        self.spares[method] -= 1
        return True

    def take_reset(self, method: str, performed: bool) -> bool:
        """Whether this call's connection is to be reset now: before performing it
        (`performed` False) or after (True), as the next scripted reset says."""
        queue = self.resets.get(method)
        if not queue or queue[0] != performed:
            return False
        queue.popleft()
        return True

    def take_failure(self, method: str) -> ApiError | None:
        """The next scripted error for `method`, shaped like Telegram's."""
        queue = self.failures.get(method)
        if not queue:
            return None
        failure = queue.popleft()
        if failure.status == 429:
            return ApiError(429, failure.description or
                            f"Too Many Requests: retry after {failure.retry_after}",
                            {"retry_after": failure.retry_after})
        return ApiError(failure.status, failure.description or
                        _FAULT_TEXT.get(failure.status, "Simulated failure"))

    def migration(self, method: str, chat_id: Any) -> ApiError | None:
        """A send to a group that became a supergroup: refused, naming the new chat (nothing sent)."""
        new_chat_id = self.migrated.get(chat_id) if isinstance(chat_id, int) else None
        if new_chat_id is None or not method.startswith("send"):
            return None
        return ApiError(400, "Bad Request: group chat was upgraded to a supergroup chat",
                        {"migrate_to_chat_id": new_chat_id})

    def take_drop(self, method: str) -> bool:
        """Whether this call's response is to be swallowed."""
        if self.drops[method] <= 0:
            return False
        self.drops[method] -= 1
        return True


class FloodLimiter:
    """Token buckets: ~30 msg/s per bot, 1 msg/s per private chat (burst 3), 20/min per group.

    An album may drive a bucket into debt, so it passes once and delays what follows.
    """

    BOT = (30.0, 30.0)  # (burst, refill per second)
    PRIVATE = (3.0, 1.0)
    GROUP = (20.0, 20.0 / 60.0)

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._buckets: dict[Any, list[float]] = {}  # key -> [tokens, updated]

    def charge(self, chat_id: int | str, count: int) -> None:
        """Spend `count` messages or raise 429 with the whole seconds to wait."""
        now = self._clock()
        private = isinstance(chat_id, int) and chat_id > 0
        rules = [("bot", self.BOT), (("chat", chat_id), self.PRIVATE if private else self.GROUP)]
        waits = []
        for key, (burst, rate) in rules:
            bucket = self._buckets.setdefault(key, [burst, now])
            bucket[0] = min(burst, bucket[0] + (now - bucket[1]) * rate)
            bucket[1] = now
            waits.append((min(count, burst) - bucket[0]) / rate)
        wait = max(waits)
        if wait > 1e-9:
            seconds = max(1, math.ceil(wait))
            raise ApiError(429, f"Too Many Requests: retry after {seconds}", {"retry_after": seconds})
        for key, _ in rules:
            self._buckets[key][0] -= count


def counts_for_flood(method: str) -> bool:
    """Only messages count: chat actions, polling and callback answers are free."""
    return method != "sendChatAction" and method.startswith(("send", "edit", "copy", "forward"))
