"""hmp shares balanced phase by phase on the cost model, beside Galaxy's shares by speed.

Galaxy gives each device heads, MLP columns and rows in proportion to its measured speed. A
device's time is not its share over its speed alone: whole heads round, thin shares and small
ring tiles run slower (the profile's grids), the attention core grows with heads but not with
columns, and what the gateway learns of a device from its traces (planner/speed.py,
planner/calibrate.py) weighs on some of its work more than on the rest. In bench/RESULTS.md
("12-07, midnight") the slowest device of the reference home computed 11-37% longer per layer
than the other two under shares by speed, and they waited for it.

A layer has two synchronised phases, attention (ending at its reduce-scatter) and the MLP
(ending at its own), so each is balanced on its own: whole heads (or KV groups) move off the
device whose attention is predicted slowest, then blocks of MLP columns off the device whose
MLP is, each to where it leaves that phase's slowest time lowest, for as long as a move makes
the phase faster. The planner costs the result beside the split by speed and keeps the faster
(planner.candidates).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Literal

from assistant.planner.cost import core_ms, split_compute, tile_ms
from assistant.planner.profiles import DeviceProfile
from edge_worker.spec.config import ModelConfig
from edge_worker.spec.plan import COLUMN_ALIGN, ParallelPlan

Times = Callable[[ParallelPlan], list[float]]
Share = Literal["heads", "mlp_columns"]


def balanced(
    cfg: ModelConfig,
    ring: Sequence[DeviceProfile],
    plan: ParallelPlan,
    seq_len: int,
    by_groups: bool,
) -> ParallelPlan:
    """hmp `plan` with its heads, then its MLP columns, moved until neither phase's
    slowest device can be made faster by one move; its rows unchanged."""

    def attention(p: ParallelPlan) -> list[float]:
        return phase_compute_ms(cfg, ring, p, seq_len)[0]

    def mlp(p: ParallelPlan) -> list[float]:
        return phase_compute_ms(cfg, ring, p, seq_len)[1]

    cols = COLUMN_ALIGN if cfg.intermediate_size >= 2 * COLUMN_ALIGN * len(ring) else 1
    plan = _descend(plan, "heads", cfg.group_size if by_groups else 1, attention)
    return _descend(plan, "mlp_columns", cols, mlp)


def phase_compute_ms(
    cfg: ModelConfig, ring: Sequence[DeviceProfile], plan: ParallelPlan, seq_len: int
) -> tuple[list[float], list[float]]:
    """Each device's compute per layer in an hmp prefill's two synchronised phases, waits
    left out: attention (QKV, the core, out-projection) and the MLP block; overlapped tiles at
    the device's `overlap_compute` (the connective blocks and the ring's CPU work, which no
    head or column moves, are left out)."""
    if not (plan.overlap and len(ring) > 1):
        attn, mlp, _ = split_compute(cfg, ring, plan, seq_len)
        return attn, mlp
    rows = plan.seq_split(seq_len)
    attn, mlp = [], []
    for i, d in enumerate(ring):
        qkv, out, block = tile_ms(cfg, d, plan, i, rows)
        core = core_ms(cfg, d, seq_len, plan.heads[i], seq_len)
        attn.append((sum(qkv) + sum(out)) * d.overlap_compute + core)
        mlp.append(sum(block) * d.overlap_compute)
    return attn, mlp


def _descend(plan: ParallelPlan, field: Share, unit: int, times: Times) -> ParallelPlan:
    """Move `unit`s of `field` off the slowest device while that lowers the slowest time."""
    now = times(plan)
    for _ in range(sum(getattr(plan, field)) // unit):  # a bound: each move lowers the max
        shares = list(getattr(plan, field))
        worst = max(range(len(now)), key=now.__getitem__)
        if shares[worst] <= unit:
            break
        best: tuple[float, ParallelPlan, list[float]] | None = None
        for j in range(len(shares)):
            if j == worst:
                continue
            moved = list(shares)
            moved[worst] -= unit
            moved[j] += unit
            option = _with(plan, field, tuple(moved))
            after = times(option)
            peak = max(after)
            if peak < max(now) * (1 - 1e-9) and (best is None or peak < best[0]):
                best = (peak, option, after)
        if best is None:
            break
        _, plan, now = best
    return plan


def _with(plan: ParallelPlan, field: Share, shares: tuple[int, ...]) -> ParallelPlan:
    if field == "heads":
        return replace(plan, heads=shares)
    return replace(plan, mlp_columns=shares)
