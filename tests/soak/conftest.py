"""Shared by the fault tests: the single-device Hugging Face answers to check against."""

from __future__ import annotations

import pytest

from galaxy_bench.soak_traffic import References

MAX_NEW_TOKENS = 8


@pytest.fixture(scope="session")
def references() -> References:
    return References.compute(MAX_NEW_TOKENS)
