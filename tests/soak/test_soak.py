"""A short `galaxy bench --soak`: one worker killed (SIGKILL) and restarted every ~8 s while
three clients send embeddings and greedy generations; nothing is lost, wrong or hung."""

from __future__ import annotations

import pytest

from galaxy_bench.soak import run_soak
from galaxy_bench.soak_traffic import References
from tests.soak.conftest import MAX_NEW_TOKENS

pytestmark = [pytest.mark.slow, pytest.mark.long, pytest.mark.timeout(900)]


def test_a_short_soak_with_workers_killed_loses_nothing(references: References) -> None:
    result = run_soak(
        None,
        print,
        requests=40,
        kill_every_s=8.0,
        max_new_tokens=MAX_NEW_TOKENS,
        refs=references,
    )

    counts = result["counts"]
    assert result["requests"] >= 40 and result["kills"] >= 2
    assert counts["lost"] == counts["wrong"] == counts["hung"] == 0, result["outcomes"]
    assert counts["ok"] + counts["unavailable"] == result["requests"]
    assert counts["ok"] > 0
    # The kills landed on requests in flight, and those were re-run to the right answer.
    assert result["answered_after_failover"] >= 1
