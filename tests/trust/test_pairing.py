"""Pairing codes: one-time, expiring, normalised, rate-limited per source."""

from __future__ import annotations

import re

import pytest

from assistant.errors import PairingRateLimited
from assistant.trust.pairing import PairingCodes
from edge_worker.spec.pairing import ALPHABET, MAX_STARTS, code_id, normalise


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


def test_a_code_is_used_once(codes: PairingCodes) -> None:
    code = codes.new()

    assert codes.lookup(code[:2], "10.0.0.2") == normalise(code)
    assert codes.consume(code)
    assert not codes.consume(code)
    assert codes.lookup(code[:2], "10.0.0.2") is None


def test_a_wrong_code_id_finds_nothing_and_leaves_the_live_code_usable(
    codes: PairingCodes,
) -> None:
    code = codes.new()
    wrong = "22" if code[:2] != "22" else "33"

    assert codes.lookup(wrong, "10.0.0.2") is None
    assert codes.consume(code)


def test_a_code_expires_after_its_ttl(codes: PairingCodes, clock: FakeClock) -> None:
    early, late = codes.new(), codes.new()

    clock.now += 599
    assert codes.consume(early)
    clock.now += 2
    assert codes.lookup(late[:2], "10.0.0.2") is None
    assert not codes.consume(late)


def test_case_dashes_and_spaces_are_ignored(codes: PairingCodes) -> None:
    code = codes.new()

    typed = " " + code.replace("-", " ").lower() + "\n"

    assert codes.lookup(code_id(typed), "10.0.0.2") == normalise(code)
    assert codes.consume(typed)


def test_live_codes_have_distinct_public_ids_and_are_independent(codes: PairingCodes) -> None:
    made = [codes.new() for _ in range(40)]

    assert len({c[:2] for c in made}) == 40
    assert codes.consume(made[1]) and codes.consume(made[0])


def test_a_code_is_burnt_after_its_allowed_runs(codes: PairingCodes) -> None:
    code = codes.new()

    runs = [codes.lookup(code[:2], f"10.0.0.{i}") for i in range(MAX_STARTS + 1)]

    assert runs[:MAX_STARTS] == [normalise(code)] * MAX_STARTS
    assert runs[MAX_STARTS] is None  # each run is one online guess: no more


def test_too_many_attempts_from_one_source_are_rate_limited(
    codes: PairingCodes, clock: FakeClock
) -> None:
    code = codes.new()
    other = "22" if code[:2] != "22" else "33"
    for _ in range(10):
        assert codes.lookup(other, "10.0.0.66") is None
        clock.now += 1

    with pytest.raises(PairingRateLimited) as limited:
        codes.lookup(code[:2], "10.0.0.66")  # even the right code: the limit comes first

    assert limited.value.retry_after_s == pytest.approx(50)
    assert codes.lookup(code[:2], "10.0.0.2") is not None  # other sources are not affected


def test_a_rate_limited_source_may_try_again_after_retry_after(
    codes: PairingCodes, clock: FakeClock
) -> None:
    code = codes.new()
    other = "22" if code[:2] != "22" else "33"
    for _ in range(10):
        codes.lookup(other, "10.0.0.66")
    with pytest.raises(PairingRateLimited) as limited:
        codes.lookup(code[:2], "10.0.0.66")

    clock.now += limited.value.retry_after_s + 0.001

    assert codes.lookup(code[:2], "10.0.0.66") is not None
