"""Pairing by code, as both sides compute it: SPAKE2 over the code, then proofs that bind the
home CA and the device's certificate request to the key only the two holders of the code share.

    worker                                       gateway (shows the code "K7QM-3XTA")
      a = SPAKE2_A(code); msg_a = a.start()
      POST /pairing/pake {code_id "K7", name, msg_a} ->
                                                   b = SPAKE2_B(code of "K7"); msg_b = b.start()
                                                   key = b.finish(msg_a)
                          <- {session, msg_b, ca, worker_url, proof: tag(key, "gateway", ...)}
      key = a.finish(msg_b); check the proof: else stop (nothing else is sent)
      POST /pairing/pake/{session}/finish {csr, proof: tag(key, "worker", ..., csr)} ->
                                                   check the proof; issue the certificate
                          <- {cert, ...}

The code never crosses the network. A device posing as the gateway learns nothing about it
(one online guess per run) and cannot hand out its own CA: its proof cannot match. A device
relaying between a worker and the real gateway cannot swap in its own request: the worker's
proof covers its CSR. The code's first two characters are its public id, so the gateway knows
which code to run SPAKE2 with; the other six (31^6, about 2^30) are the secret, and a code
allows `MAX_STARTS` runs before it is burnt.
"""

from __future__ import annotations

import hashlib
import hmac

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no look-alikes: no 0/O, 1/I/L
CODE_LENGTH = 8
ID_LENGTH = 2  # the public part: which live code this is
MAX_STARTS = 5  # SPAKE2 runs one code allows (each is one online guess at most)
IDENTITIES = (b"galaxy-home worker", b"galaxy-home gateway")  # SPAKE2's idA, idB


def normalise(code: str) -> str:
    """Upper case, without dashes or white space; characters outside the alphabet are kept (so
    such a code never matches) rather than guessed at."""
    return "".join(code.split()).replace("-", "").upper()


def code_id(code: str) -> str:
    return normalise(code)[:ID_LENGTH]


def transcript(msg_a: bytes, msg_b: bytes, ca_pem: bytes, worker_url: str, name: str) -> bytes:
    """What both proofs cover: the SPAKE2 messages, the home CA, where to connect, who."""
    parts = [msg_a, msg_b, hashlib.sha256(ca_pem).digest(), worker_url.encode(), name.encode()]
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def proof(key: bytes, role: str, transcript_bytes: bytes, csr_pem: bytes = b"") -> str:
    """HMAC-SHA256 of the transcript (and, for the worker, its CSR) under the SPAKE2 key."""
    body = role.encode() + b"\0" + transcript_bytes + hashlib.sha256(csr_pem).digest()
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def proofs_match(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
