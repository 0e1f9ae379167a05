"""One-time pairing codes: the gateway shows one; a new device proves it knows it without
sending it (SPAKE2, edge_worker/spec/pairing.py and assistant/trust/pake.py).

    codes = PairingCodes()
    code = codes.new()                      # "K7QM-3XTA": shown in the dashboard / on the CLI
    codes.lookup("K7", source=ip)           # the live code whose public id is "K7", or None
    codes.consume(code)                     # True once, within ttl_s; else False

Contract:
- A code is 8 characters from an alphabet without look-alikes (no 0/O, 1/I/L), grouped
  XXXX-XXXX. Its first two characters are its public id (unique among live codes); the other six
  (31**6, about 2**30) are the secret SPAKE2 runs on. Input is normalised: case, dashes and
  spaces are ignored.
- `lookup` allows `MAX_STARTS` SPAKE2 runs per code (each at most one online guess at its
  secret), then the code is burnt; `consume` is True at most once per code, within `ttl_s`.
- Every lookup counts towards its source's limit (`max_attempts_per_minute`, sliding window);
  one attempt too many raises `PairingRateLimited` with the seconds until the next is allowed.
- Thread-safe. `clock` is injectable (tests); it must be monotonic.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable

from assistant.errors import PairingRateLimited
from edge_worker.spec.pairing import ALPHABET, CODE_LENGTH, ID_LENGTH, MAX_STARTS, normalise

log = logging.getLogger(__name__)

WINDOW_S = 60.0


class PairingCodes:
    """Live one-time codes and per-source attempt counts."""

    def __init__(
        self,
        ttl_s: float = 600,
        max_attempts_per_minute: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s, self.max_attempts = ttl_s, max_attempts_per_minute
        self._clock = clock
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}  # normalised code -> clock time it expires
        self._starts: dict[str, int] = {}  # normalised code -> SPAKE2 runs so far
        self._attempts: dict[str, deque[float]] = {}  # source -> times of recent attempts

    def new(self) -> str:
        """A fresh code, live for `ttl_s`, formatted XXXX-XXXX, its id unused by live codes."""
        with self._lock:
            self._drop_expired(self._clock())
            taken = {c[:ID_LENGTH] for c in self._expiry}
            while True:
                code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
                if code[:ID_LENGTH] not in taken:
                    break
            self._expiry[code] = self._clock() + self.ttl_s
            self._starts[code] = 0
        half = CODE_LENGTH // 2
        return f"{code[:half]}-{code[half:]}"

    def lookup(self, public_id: str, source: str) -> str | None:
        """The live code with this public id, for one more SPAKE2 run (None: unknown, expired,
        or burnt after `MAX_STARTS` runs); raises PairingRateLimited for a busy source."""
        wanted = normalise(public_id)
        with self._lock:
            now = self._clock()
            self._count_attempt(source, now)
            self._drop_expired(now)
            code = next((c for c in self._expiry if c[:ID_LENGTH] == wanted), None)
            if code is None:
                log.info("pairing: no live code %r for %s", wanted, source)
                return None
            if self._starts[code] >= MAX_STARTS:
                log.warning("pairing code %s... is burnt: %d runs", wanted, MAX_STARTS)
                return None
            self._starts[code] += 1
            return code

    def consume(self, code: str) -> bool:
        """Use `code` up: True once, within its `ttl_s`; else False."""
        code = normalise(code)
        with self._lock:
            self._starts.pop(code, None)
            expiry = self._expiry.pop(code, None)
            return expiry is not None and expiry > self._clock()

    def _drop_expired(self, now: float) -> None:
        for c in [c for c, t in self._expiry.items() if t <= now]:
            del self._expiry[c]
            self._starts.pop(c, None)

    def _count_attempt(self, source: str, now: float) -> None:
        for s in [s for s, times in self._attempts.items() if times[-1] <= now - WINDOW_S]:
            del self._attempts[s]  # forget quiet sources, so the table stays small
        times = self._attempts.setdefault(source, deque())
        while times and times[0] <= now - WINDOW_S:
            times.popleft()
        if len(times) >= self.max_attempts:
            retry_after = times[0] + WINDOW_S - now
            log.warning("pairing attempts from %s rate-limited for %.0f s", source, retry_after)
            raise PairingRateLimited(
                f"too many pairing attempts from {source}; wait {retry_after:.0f} s and try again",
                retry_after,
            )
        times.append(now)
