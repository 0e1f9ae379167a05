"""API tokens for the HTTP API and dashboard (DESIGN.md section 4).

    token = new_token()            # shown to the operator once: "gh_" + 43 url-safe characters
    stored = hash_token(token)     # what the gateway keeps
    verify_token(candidate, stored)

Contract: a token carries 256 random bits, so a plain SHA-256 is a sound stored form (a slow
hash would only slow every request; there is nothing guessable to protect). The stored form is
64 lowercase hex digits and never contains the token. `verify_token` compares in constant time
and is False, never an exception, for malformed input.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

PREFIX = "gh_"


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def verify_token(token: str, stored_hash: str) -> bool:
    try:
        expected = stored_hash.encode("ascii")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(hash_token(token).encode("ascii"), expected)
