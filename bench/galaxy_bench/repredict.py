"""Predict a past bench run again with today's cost model, and choose its plan again.

    .venv/bin/python -m galaxy_bench.repredict bench/throttle-process.json

For every run of every prefill setting in the JSON, rebuilds the device profiles the run
measured (`device_profiles`: layer costs, links) and the plan it ran, and prints the measured
latency, the prediction the run made and today's. Under `--throttle process` each device's
ring shares its compute's CPU quota, so the profiles get the ring's CPU cost a worker under
that quota reports (`assistant/planner/profiles.py` `ring_cpu_cost`, cores = the device's
speed). Then today's planner chooses from the same profiles: its choice, its prediction, and
the measured latency of the run with that plan's label, if the bench ran one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from assistant.cluster.models import model_config
from assistant.planner.cost import predict
from assistant.planner.planner import choose
from assistant.planner.profiles import DeviceProfile, ring_cpu_cost
from edge_worker.spec.plan import plan_from_dict
from galaxy_bench.ring_tls import plain_ring_profile


def profiles(data: dict[str, Any], run: dict[str, Any]) -> dict[str, DeviceProfile]:
    """The run's measured profiles by name, with the ring's CPU cost of its emulation."""
    shared = data["emulation"]["cpu"] == "process"
    speed = {d["name"]: d["speed"] for d in run["devices"]}
    out = {}
    for p in run["device_profiles"]:
        cost = ring_cpu_cost(speed[p["name"]], 1) if shared else 0.0
        out[p["name"]] = DeviceProfile.model_validate({**p, "ring_cpu_ms_per_mb": cost})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    args = ap.parse_args(argv)
    data = json.loads(args.results.read_text())
    settings: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for run in data["runs"]:
        if run["phase"] == "prefill" and run.get("device_profiles"):
            mbps = "/".join(f"{d['bandwidth_mbps']:g}" for d in run["devices"])
            settings.setdefault((run["model"], run["seq_len"], mbps), []).append(run)
    for (model, seq, mbps), runs in settings.items():
        cfg = model_config(model)
        if runs[0].get("layers"):
            cfg = dataclasses.replace(cfg, n_layers=runs[0]["layers"])
        print(f"{model} seq {seq}, {mbps} Mbit/s (cpu quotas: {data['emulation']['cpu']})")
        print(f"  {'variant':20s} {'measured':>9s} {'predicted':>9s} {'today':>9s}")
        for run in runs:
            known = profiles(data, run)
            ring = [known[n] for n in run["ranks"]]
            if run["label"].endswith(" plain"):  # the bench's ring without TLS
                ring = [plain_ring_profile(d) for d in ring]
            today = predict(cfg, ring, plan_from_dict(run["plan"]), seq).total_ms
            measured = run["latency_ms_median"]
            print(
                f"  {run['label']:20s} {measured:9.0f} {run['predicted_ms']:9.0f} "
                f"{today:9.0f} ({today / measured - 1:+.0%})"
            )
        known = profiles(data, runs[0])
        decode = runs[0].get("decode_tokens", 0)  # the bench plans for them too
        choice = choose(cfg, list(known.values()), seq, decode_tokens=decode)
        names = [d.name for d in choice.ring]
        ran = [r for r in runs if plan_from_dict(r["plan"]) == choice.plan and r["ranks"] == names]
        line = f"  today's planner: {choice.label} on {names}"
        line += f", predicted {choice.predicted.total_ms:.0f} ms"
        local = [r["latency_ms_median"] for r in runs if r["label"] == "local"]
        if ran and local:
            runs_of_it = ", ".join(
                f"{r['label']} {local[0] / r['latency_ms_median']:.2f}x local" for r in ran
            )
            line += f"; the bench ran that plan: {runs_of_it}"
        else:
            line += "; the bench did not run that plan"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
