"""The plan book: standbys take over a lost worker's models at once, and a plan is released
only when no request runs on it any more."""

from __future__ import annotations

from assistant.cluster.deployment import Deployment
from assistant.cluster.plans import PlanBook
from edge_worker.spec.plan import make_plan
from tests.engine.configs import mha_config


def dep(plan_id: str, *workers: str, model: str = "m") -> Deployment:
    cfg = mha_config()
    plan = make_plan(cfg, "sp", [1.0] * len(workers)) if workers else make_plan(cfg, "local", [1])
    return Deployment(model, plan, list(workers), plan_id)


def ids(deps: list[Deployment]) -> list[str | None]:
    return sorted(d.plan_id for d in deps)  # type: ignore[type-var]


def test_a_lost_worker_switches_its_models_to_the_standby_made_for_it() -> None:
    book = PlanBook()
    book.install(dep("abc", "a", "b", "c"))
    for lost, rest in (("a", "bc"), ("b", "ac"), ("c", "ab")):
        assert book.add_standby(lost, dep(f"no-{lost}", *rest)) == []
    book.install(dep("other", "a", model="n"))

    released = book.lost("b")

    assert book.current["m"].plan_id == "no-b"
    # the old plan and the standbys that used b are released; "other" never used b
    assert ids(released) == ["abc", "no-a", "no-c"]
    assert book.current["n"].plan_id == "other" and book.standby["m"] == {}
    assert book.lost("b") == []  # said twice (the failover and the closed link): no-op


def test_a_model_without_a_standby_has_no_plan_after_a_loss() -> None:
    book = PlanBook()
    book.install(dep("ab", "a", "b"))

    assert ids(book.lost("a")) == ["ab"]
    assert "m" not in book.current


def test_a_replaced_plan_is_released_when_its_last_request_ends() -> None:
    book = PlanBook()
    old = dep("old", "a", "b")
    book.install(old)
    book.add_standby("a", dep("spare", "b"))
    book.use(old)
    book.use(old)

    released = book.install(dep("new", "a", "b", "c"))

    assert ids(released) == ["spare"]  # made for the old plan; nobody runs on a standby
    assert book.done(old) == []
    assert ids(book.done(old)) == ["old"]


def test_a_plan_never_installed_is_released_after_the_request_it_served() -> None:
    """Planned for a home that changed meanwhile: it served one request and nobody else."""
    book = PlanBook()
    book.install(dep("current", "a"))
    once = dep("once", "a", "b")
    book.use(once)

    assert ids(book.done(once)) == ["once"]
    current = book.current["m"]
    book.use(current)
    assert book.done(current) == []  # the current plan stays


def test_held_memory_counts_every_plan_a_worker_holds() -> None:
    book = PlanBook()
    book.install(dep("abc", "a", "b", "c"))
    book.add_standby("c", dep("ab", "a", "b"))
    book.install(dep("n1", "b", model="n"))

    held = book.held_mb("b", lambda d, rank: 100.0 * (rank + 1))

    assert held == 200.0 + 200.0 + 100.0  # rank 1 of abc, rank 1 of ab, rank 0 of n1
