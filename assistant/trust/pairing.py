"""One-time pairing codes: the gateway shows one, the new device proves it knows it.

    codes = PairingCodes()
    code = codes.new()                      # "K7QM-3XTA": shown in the dashboard / on the CLI
    codes.redeem("k7qm 3xta", source=ip)    # True once, within ttl_s; else False

Contract:
- A code is 8 characters from an alphabet without look-alikes (no 0/O, 1/I/L), grouped XXXX-XXXX:
  31**8, about 2**39.6 possibilities. Input is normalised: case, dashes and spaces are ignored.
- `redeem` is True at most once per code, and only within `ttl_s` of `new()`. It compares against
  every live code in constant time, so timing reveals neither a code nor how much of it matched.
- Every attempt counts towards its source's limit (`max_attempts_per_minute`, sliding window);
  one attempt too many raises `PairingRateLimited` with the seconds until the next is allowed.
  With 10 a minute and a 10-minute code, an online guess succeeds with probability ~1e-10.
- Thread-safe. `clock` is injectable (tests); it must be monotonic.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable

from assistant.errors import PairingRateLimited

log = logging.getLogger(__name__)

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 8
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
        self._attempts: dict[str, deque[float]] = {}  # source -> times of recent attempts

    def new(self) -> str:
        """A fresh code, live for `ttl_s`, formatted XXXX-XXXX."""
        code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
        with self._lock:
            self._expiry[code] = self._clock() + self.ttl_s
        half = CODE_LENGTH // 2
        return f"{code[:half]}-{code[half:]}"

    def redeem(self, code: str, source: str) -> bool:
        """True if `code` is live (and it is then used up); raises PairingRateLimited if
        `source` has made `max_attempts_per_minute` attempts in the last minute."""
        candidate = normalise(code)
        with self._lock:
            now = self._clock()
            self._count_attempt(source, now)
            live = {c: t for c, t in self._expiry.items() if t > now}
            self._expiry = live
            matched = None
            for c in live:  # every live code is compared: no early exit
                if hmac.compare_digest(c.encode(), candidate.encode()):
                    matched = c
            if matched is None:
                log.info("pairing code refused for %s (%d live codes)", source, len(live))
                return False
            del self._expiry[matched]
        log.info("pairing code redeemed by %s", source)
        return True

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


def normalise(code: str) -> str:
    """Upper case, without dashes or white space; characters outside the alphabet are kept (so
    such a code never matches) rather than guessed at."""
    return "".join(code.split()).replace("-", "").upper()
