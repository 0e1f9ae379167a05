"""Choose the plan: which devices, which strategy, which shares, for prefill and decode.

Galaxy's rule first: heads, MLP columns and sequence rows in proportion to measured speed;
then move heads and columns off any device whose memory budget (weights + KV cache +
activations) would overflow, onto devices with room. Beside it, hmp is also costed with its
heads and columns balanced phase by phase on the cost model (balance.py). Heads go by whole
KV groups, or by single query heads with a split group's K/V projection replicated on each
device that needs it (the only way to use more devices than a GQA model has groups): both
splits are costed, replicas included, and the cheaper kept. Beyond Galaxy: every subset of
devices is costed (a slow device or a slow link can make the whole ring slower), every strategy
is costed with the same model, and decode may run differently from prefill. Plans are values.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from assistant.planner.balance import balanced
from assistant.planner.cost import Breakdown, handoff_ms, predict, predict_decode
from assistant.planner.memory import memory_mb
from assistant.planner.profiles import DeviceProfile
from assistant.planner.rows import balanced_rows
from edge_worker.errors import PlanError
from edge_worker.spec.config import ModelConfig
from edge_worker.spec.plan import (
    COLUMN_ALIGN,
    ParallelPlan,
    split_by_weights,
    split_columns,
    split_heads,
    validate,
    whole_groups,
)

LABELS = ("local", "tp", "sp", "pp", "hmp", "hmp+overlap")
# The most lossy wire format the user allows (`galaxy plan --lossy-wire`, GALAXY_LOSSY_WIRE):
# the planner tries every format up to it and keeps the fastest plan.
LossyWire = Literal["off", "fp16", "int8"]
WIRES: dict[str, tuple[str, ...]] = {
    "off": ("float32",),
    "fp16": ("float32", "float16"),
    "int8": ("float32", "float16", "int8"),
}
# sp keeps the whole model on every device. Its predictions ran 18% (qwen2.5-0.5b) and 34%
# (gpt2-large) optimistic at 512 tokens in the reference home, and gpt2-large's sp then ran
# slower than local (bench/RESULTS.md, all-settings-1; cause not found: three copies of the
# model on the bench's one machine are suspected). So sp (on the fp32 wire, where that was
# measured) is chosen only when it is predicted this much faster than the best other plan.
SP_MARGIN = 1.10
WIRE_LABELS = {"float16": "fp16", "bfloat16": "bf16", "int8": "int8"}
# Lossy wires, measured (DESIGN.md section 6): max error relative to the output's scale (fp16:
# 24 BERT-Large layers; int8: SmolLM2's logits, the worst packaged model). fp32 wire: 5.8e-6.
WIRE_ERROR = {"float16": 2.5e-3, "bfloat16": 1.5e-2, "int8": 5.4e-2}


@dataclass(frozen=True)
class Choice:
    """The chosen plan and why: predictions for every alternative, devices left out."""

    label: str
    plan: ParallelPlan
    ring: list[DeviceProfile]
    predicted: Breakdown
    alternatives: dict[str, float]
    excluded: list[tuple[str, str]]
    decode_ms: float | None = None
    memory_mb: list[float] = field(default_factory=list)
    handoff_ms: float = 0.0  # the K/V cache all-gathered to a device that decodes alone

    def to_json(self, model: str, seq_len: int) -> dict[str, object]:
        rows = self.plan.seq_split(seq_len) if self.plan.strategy in ("sp", "hmp") else []
        return {
            "model": model,
            "seq_len": seq_len,
            "strategy": self.label,
            "ring": [d.name for d in self.ring],
            "heads": list(self.plan.heads),
            "mlp_columns": list(self.plan.mlp_columns),
            "seq": rows,
            "layers": list(self.plan.layers),
            "wire_dtype": self.plan.wire_dtype,
            "wire_error": WIRE_ERROR.get(self.plan.wire_dtype),
            "decode": self.plan.decode,
            "predicted_ms": round(self.predicted.total_ms, 2),
            "breakdown_ms": {
                "compute": round(self.predicted.compute_ms, 2),
                "communication": round(self.predicted.comm_ms, 2),
                "idle": round(self.predicted.idle_ms, 2),
            },
            "decode_ms_per_token": None if self.decode_ms is None else round(self.decode_ms, 3),
            "handoff_ms": round(self.handoff_ms, 2),
            "memory_mb": [round(m, 1) for m in self.memory_mb],
            "alternatives": {k: round(v, 2) for k, v in self.alternatives.items()},
            "excluded": [{"name": n, "reason": r} for n, r in self.excluded],
        }


def _units(total: int, speeds: Sequence[float]) -> list[int]:
    return split_by_weights(total, list(speeds))


def fit_memory(
    cfg: ModelConfig, plan: ParallelPlan, ring: Sequence[DeviceProfile], seq_len: int
) -> ParallelPlan | None:
    """Galaxy's memory rule: move heads (whole KV groups if the plan splits by groups, else
    single query heads) and MLP columns off devices over budget onto the device with the most
    room, until everyone fits; None if that is impossible."""
    if plan.strategy not in ("tp", "hmp"):
        ok = all(memory_mb(cfg, plan, r, seq_len) <= d.budget_mb for r, d in enumerate(ring))
        return plan if ok else None
    unit = cfg.group_size if whole_groups(cfg, plan.heads) else 1
    units = [h // unit for h in plan.heads]
    cols = list(plan.mlp_columns)
    col_step = max(1, cfg.intermediate_size // (cfg.n_kv_heads * 4))
    if col_step >= COLUMN_ALIGN:
        col_step -= col_step % COLUMN_ALIGN  # moves keep the shares aligned
    for _ in range(4 * (cfg.n_kv_heads + cfg.intermediate_size // col_step)):
        current = replace(plan, heads=tuple(u * unit for u in units), mlp_columns=tuple(cols))
        need = [memory_mb(cfg, current, r, seq_len) for r in range(len(ring))]
        over = [r for r, d in enumerate(ring) if need[r] > d.budget_mb]
        if not over:
            return current
        src = over[0]
        dst = max(range(len(ring)), key=lambda r: ring[r].budget_mb - need[r])
        if dst == src or ring[dst].budget_mb - need[dst] <= 0:
            return None
        if cols[src] > col_step:  # columns first: finer grained than whole KV groups
            cols[src] -= col_step
            cols[dst] += col_step
        elif units[src] > 1:
            units[src] -= 1
            units[dst] += 1
        else:
            return None
    return None


def candidates(
    cfg: ModelConfig, label: str, ring: Sequence[DeviceProfile], seq_len: int, wire: str
) -> list[ParallelPlan]:
    """The plans of `label` on `ring` (shares by speed, memory-fitted), none if impossible.
    tp and hmp of a GQA model give up to two: heads by whole KV groups (when every device can
    have one) and by query heads (K/V of split groups replicated). hmp gives each also
    balanced phase by phase (balance.py), Galaxy's split first."""
    speeds = [d.gflops for d in ring]
    n = len(ring)
    options: dict[str, object] = {"wire_dtype": wire}
    if (label == "local") != (n == 1):
        return []  # one device is "local" whatever the label; local is one device
    if label == "local" and wire != "float32":
        return []  # nothing goes on the wire
    plans: list[ParallelPlan] = []
    for first in (True, False):  # the first way to split, then the second (if the label has one)
        try:
            if label == "local":
                plan = ParallelPlan("local", 1)
            elif label == "tp":  # Megatron-LM: even split
                plan = _tensor(cfg, "tp", [1.0] * n, options, first)
            elif label == "sp":
                # Even rows, as the baseline; for a decoder also rows balanced by the cost
                # model (rows.py: a later chunk reads more keys). An encoder's rows by speed
                # were predicted within 6% at 1000 Mbit/s but measured 18% slower than
                # predicted at 500 Mbit/s (the slowest device's compute 31% over its
                # prediction, cause not yet found), so they are not offered there. A
                # decoder's long prompt is where sp pays (it moves only K and V: bench/
                # RESULTS.md, long prompts), with its ring's fastest device last (`sp_ring`).
                weights = (
                    (1.0,) * n if first else tuple(map(float, balanced_rows(cfg, ring, seq_len)))
                )
                plan = ParallelPlan("sp", n, seq_weights=weights, **options)  # type: ignore[arg-type]
            elif label == "pp":  # layers weighted by memory, as exo and llama.cpp RPC do
                layers = _units(cfg.n_layers, [d.budget_mb for d in ring])
                plan = ParallelPlan("pp", n, layers=tuple(layers), **options)  # type: ignore[arg-type]
            else:
                hmp = {**options, "overlap": label == "hmp+overlap"}
                plan = _tensor(cfg, "hmp", speeds, hmp, first)
            fitted = fit_memory(cfg, validate(cfg, plan), ring, seq_len)
            more = [balanced(cfg, ring, plan, seq_len, first)] if plan.strategy == "hmp" else []
        except PlanError:
            continue
        for option in [fitted, *(_fitted(cfg, b, ring, seq_len) for b in more)]:
            if option is not None and option not in plans:
                plans.append(option)
        two_ways = (label in ("tp", "hmp", "hmp+overlap") and cfg.group_size > 1) or (
            label == "sp" and cfg.causal  # heads by KV groups or not; rows even or by speed
        )
        if not two_ways:
            break
    return plans


def _fitted(
    cfg: ModelConfig, plan: ParallelPlan, ring: Sequence[DeviceProfile], seq_len: int
) -> ParallelPlan | None:
    try:
        return fit_memory(cfg, validate(cfg, plan), ring, seq_len)
    except PlanError:
        return None


def sp_ring(cfg: ModelConfig, ring: Sequence[DeviceProfile]) -> list[DeviceProfile]:
    """The ring order for sp: a decoder's sp decodes on its last device, which holds every
    K/V after the prefill, so the fastest device goes last (the others stay in order)."""
    if not cfg.causal or len(ring) < 2:
        return list(ring)
    fastest = max(range(len(ring)), key=lambda r: ring[r].gflops)
    return [d for r, d in enumerate(ring) if r != fastest] + [ring[fastest]]


def candidate(
    cfg: ModelConfig, label: str, ring: Sequence[DeviceProfile], seq_len: int, wire: str
) -> ParallelPlan | None:
    """The plan of `label` on `ring` predicted fastest for a prefill of `seq_len`, or None."""
    plans = candidates(cfg, label, ring, seq_len, wire)
    return min(plans, key=lambda p: predict(cfg, ring, p, seq_len).total_ms, default=None)


def _tensor(
    cfg: ModelConfig,
    strategy: str,
    weights: list[float],
    options: dict[str, object],
    by_groups: bool,
) -> ParallelPlan:
    return ParallelPlan(
        strategy,  # type: ignore[arg-type]
        len(weights),
        heads=split_heads(cfg, weights, by_groups=by_groups),
        mlp_columns=tuple(split_columns(cfg.intermediate_size, weights)),
        seq_weights=tuple(weights),
        **options,  # type: ignore[arg-type]
    )


def objective(
    cfg: ModelConfig,
    ring: Sequence[DeviceProfile],
    plan: ParallelPlan,
    seq_len: int,
    decode_tokens: int,
) -> float:
    """What the planner minimises: prefill plus `decode_tokens` decode steps (ms), with the
    better of the plan's ways to decode."""
    if decode_tokens and cfg.causal:
        plan, ring, step = _choose_decode(cfg, plan, list(ring), seq_len, decode_tokens)
        return predict(cfg, ring, plan, seq_len).total_ms + decode_tokens * step
    return predict(cfg, ring, plan, seq_len).total_ms


def choose(
    cfg: ModelConfig,
    devices: Sequence[DeviceProfile],
    seq_len: int,
    *,
    decode_tokens: int = 0,
    lossy_wire: LossyWire = "off",
    labels: Sequence[str] = LABELS,
) -> Choice:
    """The fastest predicted plan over every subset of devices, every strategy and every
    wire format up to `lossy_wire` (labels "hmp fp16", "hmp int8", ...)."""
    if not devices:
        raise PlanError("no devices to plan for")
    if lossy_wire not in WIRES:
        raise PlanError(f"lossy wire must be one of {', '.join(WIRES)}, not {lossy_wire!r}")
    ordered = sorted(devices, key=lambda d: -d.gflops)
    wires = WIRES[lossy_wire]
    best: dict[str, tuple[float, ParallelPlan, list[DeviceProfile], Breakdown]] = {}
    for k in range(1, len(ordered) + 1):
        for subset in itertools.combinations(ordered, k):
            for label in labels:
                ring = sp_ring(cfg, subset) if label == "sp" else list(subset)
                for wire in wires:
                    for plan in candidates(cfg, label, ring, seq_len, wire):
                        cost = predict(cfg, ring, plan, seq_len)
                        total = objective(cfg, ring, plan, seq_len, decode_tokens)
                        key = label if wire == "float32" else f"{label} {WIRE_LABELS[wire]}"
                        if key not in best or total < best[key][0]:
                            best[key] = (total, plan, ring, cost)
    if not best:
        raise PlanError(_refusal(cfg, ordered, seq_len))
    label = min(best, key=lambda key: best[key][0] * (SP_MARGIN if key == "sp" else 1.0))
    _, plan, ring, cost = best[label]
    decode_ms = None
    if decode_tokens and cfg.causal:
        plan, ring, decode_ms = _choose_decode(cfg, plan, ring, seq_len, decode_tokens)
        cost = predict(cfg, ring, plan, seq_len)
    return Choice(
        label=label,
        plan=plan,
        ring=ring,
        predicted=cost,
        alternatives={key: v[0] for key, v in sorted(best.items(), key=lambda kv: kv[1][0])},
        excluded=_excluded(cfg, ordered, ring, label, best, seq_len, decode_tokens),
        decode_ms=decode_ms,
        memory_mb=[memory_mb(cfg, plan, r, seq_len) for r in range(len(ring))],
        handoff_ms=handoff_ms(cfg, ring, plan, seq_len),
    )


def _choose_decode(
    cfg: ModelConfig,
    plan: ParallelPlan,
    ring: list[DeviceProfile],
    seq_len: int,
    decode_tokens: int,
) -> tuple[ParallelPlan, list[DeviceProfile], float]:
    """hmp prefill may decode tensor-parallel or on its fastest device alone (after handing
    it the K/V cache): cost both over `decode_tokens` steps. Returns the plan, its ring and
    the predicted ms of one decode step."""
    tp_ms = predict_decode(cfg, ring, plan, seq_len).total_ms
    if plan.strategy != "hmp" or len(ring) == 1:
        return plan, ring, tp_ms
    # The engine decodes alone on the last rank: put the fastest device last.
    fastest = max(range(len(ring)), key=lambda r: ring[r].gflops)
    order = [r for r in range(len(ring)) if r != fastest] + [fastest]
    alone = replace(
        plan,
        heads=tuple(plan.heads[r] for r in order),
        mlp_columns=tuple(plan.mlp_columns[r] for r in order),
        seq_weights=tuple(plan.seq_weights[r] for r in order),
        decode="local",
    )
    new_ring = [ring[r] for r in order]
    fits = all(memory_mb(cfg, alone, r, seq_len) <= d.budget_mb for r, d in enumerate(new_ring))
    alone_ms = predict_decode(cfg, new_ring, alone, seq_len).total_ms
    handoff = handoff_ms(cfg, new_ring, alone, seq_len)
    if fits and alone_ms * decode_tokens + handoff < tp_ms * decode_tokens:
        return alone, new_ring, alone_ms
    return plan, ring, tp_ms


def _excluded(
    cfg: ModelConfig,
    devices: Sequence[DeviceProfile],
    ring: Sequence[DeviceProfile],
    label: str,
    best: dict[str, tuple[float, ParallelPlan, list[DeviceProfile], Breakdown]],
    seq_len: int,
    decode_tokens: int,
) -> list[tuple[str, str]]:
    chosen = {d.name for d in ring}
    out = []
    base = best[label][0]
    for d in devices:
        if d.name in chosen:
            continue
        if label == "local":
            others = [(k, v[0]) for k, v in best.items() if k != "local"]
            k, ms = min(others, key=lambda kv: kv[1]) if others else ("none", float("inf"))
            out.append(
                (
                    d.name,
                    f"collaborating is predicted slower than the fastest device alone (best "
                    f"multi-device plan: {k}, {ms:.0f} ms vs {base:.0f} ms)",
                )
            )
            continue
        base_label = label.split(" ")[0]
        with_it = sp_ring(cfg, [*ring, d]) if base_label == "sp" else [*ring, d]
        plans = candidates(cfg, base_label, with_it, seq_len, best[label][1].wire_dtype)
        if not plans:
            reason = "the plan cannot use it (memory, or no whole share left for it)"
        else:
            ms = min(objective(cfg, with_it, p, seq_len, decode_tokens) for p in plans)
            reason = (
                f"adding it is predicted slower ({ms:.0f} ms vs {base:.0f} ms): its "
                f"{d.gflops:g} GFLOP/s and {d.bandwidth_mbps:g} Mbit/s link cost more than "
                "they add"
            )
        out.append((d.name, reason))
    return out


def _refusal(cfg: ModelConfig, devices: Sequence[DeviceProfile], seq_len: int) -> str:
    whole = memory_mb(cfg, ParallelPlan("local", 1), 0, seq_len)
    total = sum(d.budget_mb for d in devices)
    return (
        f"the model needs about {whole:.0f} MB for a {seq_len}-token request (weights, KV "
        f"cache, activations) and no split fits: the home's devices offer {total:.0f} MB in "
        f"all ({', '.join(f'{d.name} {d.budget_mb:.0f} MB' for d in devices)}); add a device "
        "or choose a smaller model"
    )
