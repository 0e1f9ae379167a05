"""Spoken replies kept for a while, so a client can fetch `GET /v1/audio/{request_id}.wav`."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class ReplyAudio:
    """At most `keep` replies, each for `ttl_s` seconds (thread-safe)."""

    def __init__(
        self, keep: int = 64, ttl_s: float = 600.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.keep, self.ttl_s, self._clock = keep, ttl_s, clock
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, request_id: str, wav: bytes) -> None:
        with self._lock:
            self._items[request_id] = (self._clock() + self.ttl_s, wav)
            self._items.move_to_end(request_id)
            while len(self._items) > self.keep:
                self._items.popitem(last=False)

    def get(self, request_id: str) -> bytes | None:
        with self._lock:
            item = self._items.get(request_id)
            if item is None:
                return None
            if item[0] < self._clock():
                del self._items[request_id]
                return None
            return item[1]
