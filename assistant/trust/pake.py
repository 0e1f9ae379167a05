"""The gateway's side of pairing by code (the protocol: edge_worker/spec/pairing.py).

    sessions = PakeSessions()
    started = sessions.start(code, name, msg_a, ca_pem, worker_url)   # -> session id, msg_b, proof
    code = sessions.finish(started.session, csr_pem, worker_proof)    # the code, if the proof holds

A session lives `ttl_s` (60 s) and finishes at most once; a wrong proof ends it. At most
`max_sessions` are open at once (the oldest is dropped), so an unauthenticated client cannot
fill the gateway's memory.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from spake2 import SPAKE2_B

from assistant.errors import PairingRefused
from edge_worker.spec.pairing import IDENTITIES, proof, proofs_match, transcript


@dataclass(frozen=True)
class Started:
    session: str
    msg_b: bytes
    proof: str


@dataclass
class _Session:
    code: str
    name: str
    key: bytes
    transcript: bytes
    expires: float


class PakeSessions:
    def __init__(
        self,
        ttl_s: float = 60.0,
        max_sessions: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s, self.max_sessions, self._clock = ttl_s, max_sessions, clock
        self._open: OrderedDict[str, _Session] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, code: str, name: str, msg_a: bytes, ca_pem: bytes, worker_url: str) -> Started:
        """Run SPAKE2's B side with `code` against the worker's `msg_a`."""
        b = SPAKE2_B(code.encode(), idA=IDENTITIES[0], idB=IDENTITIES[1])
        msg_b = b.start()
        try:
            key = b.finish(msg_a)
        except Exception as exc:  # spake2 raises its own errors on a malformed message
            raise PairingRefused(f"malformed SPAKE2 message: {exc}") from None
        seen = transcript(msg_a, msg_b, ca_pem, worker_url, name)
        session = secrets.token_urlsafe(18)
        with self._lock:
            now = self._clock()
            for sid in [s for s, v in self._open.items() if v.expires <= now]:
                del self._open[sid]
            while len(self._open) >= self.max_sessions:
                self._open.popitem(last=False)
            self._open[session] = _Session(code, name, key, seen, now + self.ttl_s)
        return Started(session, msg_b, proof(key, "gateway", seen))

    def finish(self, session: str, csr_pem: bytes, worker_proof: str) -> tuple[str, str]:
        """(code, device name) when `worker_proof` shows the worker holds the same key and sent
        this CSR; `PairingRefused` otherwise. Either way the session is over."""
        with self._lock:
            s = self._open.pop(session, None)
        if s is None or s.expires <= self._clock():
            raise PairingRefused("no such pairing session, or it expired: start again")
        if not proofs_match(proof(s.key, "worker", s.transcript, csr_pem), worker_proof):
            raise PairingRefused(
                "the device's proof does not match the code: a mistyped code, or a device "
                "relaying someone else's pairing"
            )
        return s.code, s.name
