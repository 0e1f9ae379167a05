"""The bench's verdicts on the planner: whole requests, like-for-like wire, twin plans."""

from __future__ import annotations

from typing import Any

from galaxy_bench.report import planner_table, summary, table
from galaxy_bench.suite import transport_table


def run(label: str, ms: float, plan: str, ranks: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "label": label,
        "latency_ms_median": ms,
        "predicted_ms": ms * 1.1,
        "compute_ms": ms * 0.8,
        "wire_dtype": "float32",
        "plan": {"strategy": plan},
        "ranks": ranks,
        **extra,
    }


def test_the_planner_is_judged_on_whole_requests_and_its_twin_is_named() -> None:
    decode = {"decode_tokens": 10, "decode_ms_per_token_median": 100.0, "predicted_decode_ms": 90}
    runs = [
        run("local", 1000, "local", ["a"], **decode),  # 2000 with its decode steps
        run("hmp", 900, "hmp", ["a", "b"], **{**decode, "decode_ms_per_token_median": 200.0}),
        run("planned", 1050, "local", ["a"], planner_chose="local", **decode),
    ]

    s = summary("home", runs)

    assert s["best_fixed"] == "local" and s["best_fixed_ms"] == 2000  # hmp: 900 + 2000
    assert s["planned_ms"] == 2050 and s["planned_vs_local"] == 2050 / 2000
    assert s["planned_predicted_ms"] == 1050 * 1.1 + 10 * 90
    assert s["same_plan_as"] == "local"
    assert "local (the local row's plan)" in planner_table([s])
    runs[2]["ranks"] = ["b"]
    assert summary("home", runs)["same_plan_as"] is None


def test_the_plan_made_again_on_learned_speeds_is_set_against_the_first() -> None:
    runs = [
        run("local", 1000, "local", ["a"]),
        run("planned", 800, "sp", ["a", "b"], planner_chose="sp"),
        run("planned, learned", 640, "sp", ["a", "b"], planner_chose="sp"),
    ]

    s = summary("home", runs)

    assert s["best_fixed"] == "local"  # neither planner row counts as a fixed variant
    assert s["learned_vs_planned"] == 800 / 640 and s["learned_vs_local"] == 1000 / 640


def test_hmp_overlap_replanned_on_what_it_taught_is_not_a_fixed_variant() -> None:
    runs = [
        run("local", 1000, "local", ["a"]),
        run("tp", 1200, "tp", ["a", "b"]),
        run("hmp+overlap", 800, "hmp", ["a", "b"]),
        run("hmp+overlap, learned", 500, "hmp", ["a", "b"], learned_from="hmp+overlap"),
        run("planned", 900, "hmp", ["a", "b"], planner_chose="hmp"),
    ]

    s = summary("home", runs)

    assert s["best_fixed"] == "hmp+overlap"
    assert s["overlap_learned_vs_local"] == 1000 / 500
    assert s["overlap_learned_vs_tp"] == 1200 / 500
    assert s["overlap_learned_vs_fixed"] == 800 / 500
    for r in runs:
        r |= {"devices": [{"name": "a", "bandwidth_mbps": 100}], "comm_ms": 0, "peak_mem_mb": [1]}
    assert "hmp+overlap, learned (re-planned" in table("home", runs)


def test_every_table_title_names_the_emulation_that_ran() -> None:
    sleep = "loopback links (not shaped), SLEEP emulation (not a real CPU cap)"
    runs = [run("local", 1000, "local", ["a"]), run("planned", 1000, "local", ["a"])]
    for r in runs:
        r |= {"devices": [{"name": "a", "bandwidth_mbps": 100}], "comm_ms": 0, "peak_mem_mb": [1]}
    runs[1]["planner_chose"] = "local"
    summaries = [{**summary("home", runs), "emulation": sleep}]

    titles = [
        table(f"home; {sleep}", runs).splitlines()[0],
        planner_table(summaries).splitlines()[0],
        transport_table([], sleep).splitlines()[0],
    ]

    assert all(t.startswith("**") and t.endswith(f"{sleep}**") for t in titles)


def test_overlap_is_judged_against_the_plain_path_it_hides_the_ring_behind() -> None:
    runs = [
        run("local", 3000, "local", ["a"]),
        run("hmp", 2000, "hmp", ["a", "b"]),  # computes 1600: 400 ms of exposed ring
        run("hmp+overlap", 1800, "hmp", ["a", "b"], overlap=True),  # computes 1440
    ]
    runs[2]["compute_ms"] = 1760.0  # the overlapped layers computed 10% longer

    s = summary("home", runs)

    assert s["exposed_comm_ms"] == 400 and s["overlap_hides"] == 0.5
    assert s["overlap_compute_vs_plain"] == 1.1
    # A focused run (`--variant`) without tp still reports, with "-x" for what did not run.
    devices = [{"name": n, "bandwidth_mbps": 1000} for n in ("a", "b")]
    rows = [{**r, "devices": devices, "comm_ms": 0, "peak_mem_mb": [1.0, 1.0]} for r in runs]
    text = table("home", rows)
    assert "hmp+overlap: 1.67x local, -x tp; overlap hides 50%" in text
