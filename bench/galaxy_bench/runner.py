"""Run benchmark settings on real worker processes in an emulated home.

For each setting: build the home (namespaces + shaped links, CPU quotas on each worker's
compute thread), start one worker per device, measure each worker's GEMM throughput, then run
every variant `reps` times, interleaved (rep 1 of every variant, then rep 2, ...) after one
warm-up round, so a noisy machine hurts all variants alike. Only ratios within one run are
meaningful. In a setting that decodes, the timed prefill is the one `generate` runs: its
latency is the time to the first token (`ttft_ms_median`), then `decode_tokens` greedy steps
give `decode_ms_per_token_median` and `decode_tokens_per_s`.
"""

from __future__ import annotations

import gc
import logging
import statistics
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from assistant.cluster.learning import Learning
from assistant.cluster.profiling import device_profile, profile_request
from assistant.cluster.remote import RemoteCluster, launch_workers
from assistant.planner.cost import predict, predict_decode
from assistant.planner.planner import choose, sp_ring
from assistant.planner.profiles import DeviceProfile
from edge_worker.engine.generate import SamplingParams, generate
from edge_worker.engine.loader import from_hf
from edge_worker.models.catalog import load_model
from edge_worker.service import protocol as P
from edge_worker.spec.plan import ParallelPlan, make_plan
from galaxy_bench.bounds import compute_bound_ms, wire_bound_ms
from galaxy_bench.emulation import CpuMode, EmulationError, Home, LinkMode
from galaxy_bench.ring_tls import issue_ring_credentials, plain_ring_profile
from galaxy_bench.settings import Setting, Variant

log = logging.getLogger(__name__)


def profiles(
    setting: Setting,
    hellos: dict[str, P.Hello],
    measured: dict[str, P.ProfileResult],
    links: dict[str, tuple[float, float]],
) -> dict[str, DeviceProfile]:
    """What the planner knows of each device, all measured: layer costs at the model's shapes,
    free memory, and the link (Mbit/s, hop latency) probed over the data plane."""
    return {
        d.name: device_profile(
            hellos[d.name], measured[d.name], links.get(d.name, (d.bandwidth_mbps, 0.1))
        )
        for d in setting.devices
    }


def _plan_for(
    variant: Variant, setting: Setting, cfg: Any, names: list[str], known: dict[str, DeviceProfile]
) -> tuple[ParallelPlan, list[str], str]:
    """The plan of a variant, the workers it runs on (ring order), and what it is."""
    gflops = {n: p.gflops for n, p in known.items()}
    if variant.planned or variant.learned:  # a learned fixed variant: its strategy only
        only = {} if variant.planned else {"labels": (_strategy_label(variant),)}
        choice = choose(
            cfg, list(known.values()), setting.seq_len, decode_tokens=setting.decode_tokens,
            **only,  # type: ignore[arg-type]
        )  # fmt: skip
        return choice.plan, [d.name for d in choice.ring], choice.label
    if variant.strategy == "local":
        # The baseline is the strongest device by its emulated speed, not by a profile taken on
        # a busy machine: in the first smollm2-2048 run the 25% device measured 10.9 GFLOP/s
        # and the 50% one 10.6, and local ran on the slower device (bench/RESULTS.md).
        speed = {d.name: d.speed for d in setting.devices}
        fastest = max(names, key=lambda n: speed[n])
        return make_plan(cfg, "local", [1.0]), [fastest], variant.label
    if (
        variant.strategy in ("tp", "hmp")
        and len(names) > cfg.n_kv_heads
        and not variant.every_device
    ):
        # One whole key/value group per device at least: the fastest devices, in ring order.
        keep = set(sorted(names, key=lambda n: -gflops[n])[: cfg.n_kv_heads])
        names = [n for n in names if n in keep]
    if variant.strategy == "sp":  # a decoder's sp decodes on its last device: the fastest
        names = [d.name for d in sp_ring(cfg, [known[n] for n in names])]
    weights = [gflops[n] if variant.split == "speed" else 1.0 for n in names]
    plan = make_plan(
        cfg, variant.strategy, weights, overlap=variant.overlap, wire_dtype=variant.wire_dtype
    )
    if variant.even_rows:
        plan = replace(plan, seq_weights=(1.0,) * len(names))
    return plan, names, variant.label


def _strategy_label(variant: Variant) -> str:
    """The planner's label for a fixed variant's strategy ("hmp+overlap", "tp", ...)."""
    return variant.strategy + ("+overlap" if variant.overlap else "")


def run_setting(
    setting: Setting,
    reps: int,
    links: LinkMode,
    cpu: CpuMode,
    progress: Any = None,
    cpu_slice_us: int | None = None,
    ballast: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """All variants of one setting; returns (runs, emulation description). `cpu_slice_us`:
    the CPU quotas' slice, `ballast`: waits spend the quota (`emulation.Home`)."""
    devices = list(setting.devices)
    names = [d.name for d in devices]
    # The Hugging Face model is dropped once converted: gpt2-large holds 3 GB in each.
    cfg, weights = from_hf(load_model(setting.model, num_layers=setting.num_layers).model)
    gc.collect()
    ids = torch.randint(
        0, cfg.vocab_size, (1, setting.seq_len), generator=torch.Generator().manual_seed(0)
    )
    with (
        Home(devices, links=links, cpu=cpu, cpu_slice_us=cpu_slice_us, ballast=ballast) as home,
        tempfile.TemporaryDirectory() as tmp,
    ):
        cluster = RemoteCluster.start(home.coordinator_host, timeout=600)
        # Keep only one plan's cut shards: after the warm-up round every worker has them all.
        cluster.coordinator.shards.keep = len(devices)
        issue_ring_credentials(Path(tmp), names)  # the ring encrypts, as the product's does
        procs = launch_workers(
            cluster.url,
            names,
            Path(tmp),
            prefix=[home.prefix(i) for i in range(len(devices))],
            hosts=[home.device_host(i) for i in range(len(devices))],
            speeds=[d.speed if home.cpu == "sleep" else 1.0 for d in devices],
            max_deployments=1,  # one plan in memory at a time: peak memory is per plan
            shard_cache=len(setting.variants) + 2,  # every variant's shard stays cached,
            shard_cache_mb=1e9,  # whatever its size (the folder is deleted after the setting)
        )
        try:
            hellos = {h.name: h for h in cluster.wait_for_workers(len(devices), timeout=120)}
            for i, d in enumerate(devices):
                home.throttle(i, *_process_ids(hellos[d.name]))
            request = profile_request(cfg, setting.seq_len, world=len(names), seconds=6.0)
            measured, took = {}, {}
            for name in names:  # one at a time: they share this machine's cores
                t0 = time.perf_counter()
                measured[name] = cluster.profile(name, request)
                took[name] = round(time.perf_counter() - t0, 1)
            gflops = {name: measured[name].gflops for name in names}
            log.info("measured GFLOP/s: %s; profiling took %s s", gflops, took)
            probed = cluster.probe_links(names, timeout=300)
            log.info("measured links: %s", probed)
            known = profiles(setting, hellos, measured, probed)
            runs = _measure(setting, cluster, cfg, weights, ids, names, known, reps, progress)
            emulation = home.describe()
            for r in runs:
                r["emulation"] = emulation["label"]  # what ran, in words (sleep says so)
                r["measured_gflops"] = [round(gflops[name], 2) for name in names]
                r["profile_s"] = [took[name] for name in names]
                r["measured_link_mbps"] = [round(probed.get(n, (0.0, 0.0))[0], 1) for n in names]
                # Everything the cost model saw, so predictions can be re-made from the JSON.
                r["device_profiles"] = [known[n].model_dump(exclude_none=True) for n in names]
            return runs, emulation
        finally:
            cluster.close()
            for p in procs:
                p.kill()


def _process_ids(hello: P.Hello) -> tuple[int, int]:
    """(pid, compute thread id) of a worker, which only `galaxy worker --development` sends."""
    if hello.dev is None:
        raise EmulationError(
            f"worker {hello.name} did not send its process and compute-thread ids: CPU quotas "
            "need workers started with --development (as launch_workers starts them)"
        )
    return hello.dev.pid, hello.dev.compute_tid


def _measure(
    setting: Setting,
    cluster: RemoteCluster,
    cfg: Any,
    weights: Any,
    ids: torch.Tensor,
    names: list[str],
    known: dict[str, DeviceProfile],
    reps: int,
    progress: Any,
) -> list[dict[str, Any]]:
    plans = {
        v.label: _plan_for(v, setting, cfg, names, known) for v in setting.variants if not v.learned
    }
    # what each learned variant learns from its teacher's warm-up round
    learning = {v.label: Learning(settled=1) for v in setting.variants if v.learned}
    learned_on: dict[str, dict[str, DeviceProfile]] = {}  # the profiles with what it learned
    want = "last_logits" if cfg.causal else "hidden"
    samples: dict[str, list[dict[str, Any]]] = {v.label: [] for v in setting.variants}
    for rep in range(reps + 1):  # round 0 warms up (shard shipping, allocator, caches)
        for v in setting.variants:
            if v.learned and v.label not in plans:
                taught = learning[v.label]
                profiles = {n: taught.applied(p, setting.model) for n, p in known.items()}
                learned_on[v.label] = profiles
                plans[v.label] = _plan_for(v, setting, cfg, names, profiles)
            plan, ranks, _ = plans[v.label]
            cluster.deploy(cfg, weights, plan, ranks, plain_ring=v.plain_ring)
            decode_ms = None
            if setting.decode_tokens:  # the prefill is generate's: latency = time to 1st token
                runner = _FirstToken(cluster)
                gen = generate(
                    runner,
                    ids[0].tolist(),
                    SamplingParams(setting.decode_tokens, stop_ids=frozenset()),
                )
                latency, results = gen.prefill_ms, runner.prefill_results
                decode_ms = statistics.median(gen.decode_ms)
            else:
                t0 = time.perf_counter()
                cluster.prefill(ids, want=want)
                latency = (time.perf_counter() - t0) * 1e3
                results = [r.result for r in cluster.last]
            slowest = max(results, key=lambda r: r.compute_ms)
            sample: dict[str, Any] = {
                "latency_ms": latency,
                "comm_ms": max(r.comm_wait_ms for r in results),
                "compute_ms": slowest.compute_ms,
                # the slowest device's trace: per layer, compute and the time it waited
                "layers": [(x.compute_ms, x.comm_ms, x.cpu_ms) for x in slowest.layers],
                "peak_mem_mb": {names_i: 0.0 for names_i in names},
            }
            sample["device_compute_ms"] = {}  # every device's, to see how even a split is
            for name, r in zip(ranks, results, strict=True):
                sample["peak_mem_mb"][name] = round(r.peak_rss_mb, 1)
                sample["device_compute_ms"][name] = round(r.compute_ms, 1)
            if decode_ms is not None:
                sample["decode_ms"] = decode_ms
            pupils = [w.label for w in setting.variants if w.learns_from == v.label]
            if rep == 0 and pupils:
                ring = [known[n] for n in ranks]
                layers = [[x.compute_ms for x in r.layers] for r in results]
                for pupil in pupils:
                    learning[pupil].observe_prefill(
                        setting.model, cfg, plan, ring, setting.seq_len, layers
                    )
            if rep > 0:
                samples[v.label].append(sample)
            if progress:
                progress(f"  round {rep}/{reps} {v.label:<18} {latency:9.1f} ms")
    rows = []
    bound = compute_bound_ms(cfg, setting.seq_len, list(known.values()))
    for v in setting.variants:
        plan, ranks, chose = plans[v.label]
        row = _row(setting, v, (plan, ranks), samples[v.label], names)
        planned_on = learned_on[v.label] if v.learned else known
        ring = [plain_ring_profile(planned_on[n]) if v.plain_ring else planned_on[n] for n in ranks]
        if v.learned:
            row["learned_from"] = v.learns_from
            row["learned_slowdown"] = {n: round(planned_on[n].slowdown, 3) for n in ranks}
            row["learned_overlap"] = {n: round(planned_on[n].overlap_compute, 3) for n in ranks}
        predicted = predict(cfg, ring, plan, setting.seq_len).total_ms
        row["predicted_ms"] = round(predicted, 1)
        row["compute_bound_ms"] = round(bound, 1)  # every device, no communication
        row["wire_bound_ms"] = round(wire_bound_ms(cfg, ring, plan, setting.seq_len), 1)
        if setting.decode_tokens and cfg.causal:
            row["predicted_decode_ms"] = round(
                predict_decode(cfg, ring, plan, setting.seq_len).total_ms, 2
            )
        if v.planned:
            row["planner_chose"] = chose
        rows.append(row)
    return rows


class _FirstToken:
    """The cluster as `generate`'s step runner, keeping each rank's result of the prefill (the
    decode steps replace `cluster.last`)."""

    def __init__(self, cluster: RemoteCluster) -> None:
        self.cluster = cluster
        self.prefill_results: list[P.Result] = []

    def prefill_last_logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        logits = self.cluster.prefill_last_logits(input_ids)
        self.prefill_results = [r.result for r in self.cluster.last]
        return logits

    def decode(self, token_ids: torch.Tensor) -> torch.Tensor:
        return self.cluster.decode(token_ids)


def _row(
    setting: Setting,
    v: Variant,
    plan_ranks: tuple[ParallelPlan, list[str]],
    samples: list[dict[str, Any]],
    names: list[str],
) -> dict[str, Any]:
    plan, ranks = plan_ranks
    lat = [s["latency_ms"] for s in samples]
    row: dict[str, Any] = {
        "model": setting.model,
        "seq_len": setting.seq_len,
        "layers": setting.num_layers,
        "phase": "prefill",
        "devices": [
            {"name": d.name, "speed": d.speed, "bandwidth_mbps": d.bandwidth_mbps}
            for d in setting.devices
        ],
        "label": v.label,
        "strategy": v.strategy,
        "overlap": v.overlap,
        "wire_dtype": v.wire_dtype,
        "ranks": ranks,
        "plan": {k: val for k, val in asdict(plan).items() if val not in ((), None)},
        "latency_ms_median": statistics.median(lat),
        "latency_ms_all": [round(x, 2) for x in lat],
        "comm_ms": statistics.median(s["comm_ms"] for s in samples),
        "compute_ms": statistics.median(s["compute_ms"] for s in samples),
        "hidden_comm_ms": None,
        "layers_ms": _per_layer(samples),
        "peak_mem_mb": [max(s["peak_mem_mb"][n] for s in samples) for n in names],
        "device_compute_ms": {
            n: statistics.median(s["device_compute_ms"][n] for s in samples) for n in ranks
        },
    }
    if setting.decode_tokens:
        row["decode_tokens"] = setting.decode_tokens
        row["decode_ms_per_token_median"] = statistics.median(s["decode_ms"] for s in samples)
        row["ttft_ms_median"] = row["latency_ms_median"]  # the prefill ends with the 1st token
        row["decode_tokens_per_s"] = 1e3 / row["decode_ms_per_token_median"]
    return row


def _per_layer(samples: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Per layer of the slowest device, the median over samples of its compute, of the time
    its compute waited on the ring and of its compute thread's CPU time (empty when the ranks
    sent no per-layer trace)."""
    n = min((len(s["layers"]) for s in samples), default=0)
    return [
        {
            "compute_ms": round(statistics.median(s["layers"][i][0] for s in samples), 2),
            "wait_ms": round(statistics.median(s["layers"][i][1] for s in samples), 2),
            "cpu_ms": round(statistics.median(s["layers"][i][2] or 0.0 for s in samples), 2),
        }
        for i in range(n)
    ]
