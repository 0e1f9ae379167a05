"""Pairing codes: one-time, expiring, normalised, rate-limited per source."""

from __future__ import annotations

import re

import pytest

from assistant.errors import PairingRateLimited
from assistant.trust.pairing import ALPHABET, PairingCodes


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def codes(clock: FakeClock) -> PairingCodes:
    return PairingCodes(ttl_s=600, max_attempts_per_minute=10, clock=clock)


def test_a_code_is_eight_unambiguous_characters_in_two_groups(codes: PairingCodes) -> None:
    code = codes.new()

    assert re.fullmatch(rf"[{ALPHABET}]{{4}}-[{ALPHABET}]{{4}}", code)
    assert not set("01OIL") & set(ALPHABET)


def test_a_code_is_redeemed_once(codes: PairingCodes) -> None:
    code = codes.new()

    assert codes.redeem(code, "10.0.0.2")
    assert not codes.redeem(code, "10.0.0.2")


def test_a_wrong_code_is_refused_and_leaves_the_live_code_usable(codes: PairingCodes) -> None:
    code = codes.new()
    wrong = "2222-2222" if code != "2222-2222" else "3333-3333"

    assert not codes.redeem(wrong, "10.0.0.2")
    assert codes.redeem(code, "10.0.0.2")


def test_a_code_expires_after_its_ttl(codes: PairingCodes, clock: FakeClock) -> None:
    early, late = codes.new(), codes.new()

    clock.now += 599
    assert codes.redeem(early, "10.0.0.2")
    clock.now += 2
    assert not codes.redeem(late, "10.0.0.2")


def test_case_dashes_and_spaces_are_ignored(codes: PairingCodes) -> None:
    code = codes.new()

    typed = " " + code.replace("-", " ").lower() + "\n"

    assert codes.redeem(typed, "10.0.0.2")


def test_codes_from_the_same_gateway_are_independent(codes: PairingCodes) -> None:
    first, second = codes.new(), codes.new()

    assert codes.redeem(second, "10.0.0.2")
    assert codes.redeem(first, "10.0.0.3")


def test_too_many_attempts_from_one_source_are_rate_limited(
    codes: PairingCodes, clock: FakeClock
) -> None:
    code = codes.new()
    for _ in range(10):
        assert not codes.redeem("2222-2222", "10.0.0.66")
        clock.now += 1

    with pytest.raises(PairingRateLimited) as limited:
        codes.redeem(code, "10.0.0.66")  # even the right code: the limit comes first

    assert limited.value.retry_after_s == pytest.approx(50)
    assert codes.redeem(code, "10.0.0.2")  # other sources are not affected


def test_a_rate_limited_source_may_try_again_after_retry_after(
    codes: PairingCodes, clock: FakeClock
) -> None:
    code = codes.new()
    for _ in range(10):
        codes.redeem("2222-2222", "10.0.0.66")
    with pytest.raises(PairingRateLimited) as limited:
        codes.redeem(code, "10.0.0.66")

    clock.now += limited.value.retry_after_s + 0.001

    assert codes.redeem(code, "10.0.0.66")
