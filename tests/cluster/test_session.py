"""How the gateway's side of a worker's link reads its replies (`WorkerSession.next`): a fake
socket, never used (the replies are delivered by hand)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from assistant.cluster.session import WorkerSession
from edge_worker.errors import GalaxyError, WorkerLost
from edge_worker.service import protocol as P


def session() -> WorkerSession:
    hello = P.Hello(name="kitchen-pi", data_host="127.0.0.1", data_port=9)
    return WorkerSession(hello, cast(Any, None))  # next() never touches the socket


async def test_an_error_about_a_plan_given_up_is_skipped_and_one_about_this_plan_raises() -> None:
    """A worker whose ring for plan "old" did not form says so after the gateway gave that
    plan up and moved on to "new": that Error must not fail "new"'s deployment."""
    s = session()
    s.deliver(P.Error(code="worker_lost", text="ring did not form", plan_id="old"))
    s.deliver(P.Loaded(plan_id="new", shard_mb=1.0))
    assert (await s.next(1.0, plan_id="new")).plan_id == "new"

    s.deliver(P.Error(code="worker_lost", text="ring did not form", plan_id="new"))
    with pytest.raises(WorkerLost, match="ring did not form"):
        await s.next(1.0, plan_id="new")

    # Waiting for something else (a profile): a plan's Error is not about it, a plain one is.
    s.deliver(P.Error(code="plan", text="no loaded plan new here", plan_id="new"))
    s.deliver(P.Error(code="bad_message", text="malformed message"))
    with pytest.raises(GalaxyError, match="malformed message"):
        await s.next(1.0)
