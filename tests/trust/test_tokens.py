"""API tokens: random, stored hashed, verified in constant time."""

from __future__ import annotations

import re

from assistant.trust.tokens import hash_token, new_token, verify_token


def test_a_new_token_is_prefixed_and_carries_256_random_bits() -> None:
    token = new_token()

    assert re.fullmatch(r"gh_[A-Za-z0-9_-]{43}", token)
    assert token != new_token()


def test_the_right_token_verifies() -> None:
    token = new_token()

    assert verify_token(token, hash_token(token))


def test_another_token_does_not_verify() -> None:
    assert not verify_token(new_token(), hash_token(new_token()))


def test_the_stored_hash_does_not_contain_the_token() -> None:
    token = new_token()

    stored = hash_token(token)

    assert token not in stored
    assert token.removeprefix("gh_")[:16] not in stored
    assert re.fullmatch(r"[0-9a-f]{64}", stored)


def test_a_malformed_stored_hash_is_false_not_an_error() -> None:
    token = new_token()

    assert not verify_token(token, "")
    assert not verify_token(token, "é" * 64)
    assert not verify_token(token, token)
