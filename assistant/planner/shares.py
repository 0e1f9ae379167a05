"""hmp's shares balanced phase by phase by the cost model, beside Galaxy's shares by speed.

Galaxy gives each device heads, MLP columns and rows in proportion to its measured GFLOP/s.
But the attention and the MLP are separate phases, each ended by a collective that waits for
the slowest device, and a device's measured speed differs from one operation to the other (its
profile's curves) and from its GEMM GFLOP/s. In the reference home (bench/RESULTS.md,
`reference-16-ballast-learned-2`) the plan by speed gave laptop 5 of 16 heads, which its
profile prices at 162 ms of attention per layer against 95 for desk-pc's 9. Here the heads,
then the MLP columns, move one unit at a time (a head, or a whole KV group; a block of
`COLUMN_ALIGN` columns) from the device slowest in that phase to the one that leaves the
phase shortest, while that shortens it. The planner costs the result beside the plan by
speed and keeps whichever it predicts faster.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from assistant.planner.cost import core_ms, split_compute, tile_ms
from assistant.planner.profiles import DeviceProfile
from edge_worker.spec.config import ModelConfig
from edge_worker.spec.plan import COLUMN_ALIGN, ParallelPlan, whole_groups

Shares = tuple[int, ...]


def balanced_plan(
    cfg: ModelConfig, ring: Sequence[DeviceProfile], seq_len: int, by_speed: ParallelPlan
) -> ParallelPlan:
    """`by_speed` (an hmp plan on `ring`) with heads and MLP columns moved until neither
    phase's slowest device can hand a unit to another and finish the phase sooner."""

    def attention(heads: Shares) -> list[float]:
        return phase_ms(cfg, ring, replace(by_speed, heads=heads), seq_len)[0]

    unit = cfg.group_size if whole_groups(cfg, by_speed.heads) else 1
    plan = replace(by_speed, heads=_even_out(by_speed.heads, unit, attention))

    def mlp(cols: Shares) -> list[float]:
        return phase_ms(cfg, ring, replace(plan, mlp_columns=cols), seq_len)[1]

    align = COLUMN_ALIGN if cfg.intermediate_size % COLUMN_ALIGN == 0 else 1
    cols = _even_out(plan.mlp_columns, align, mlp)
    return replace(plan, mlp_columns=cols)


def phase_ms(
    cfg: ModelConfig, ring: Sequence[DeviceProfile], plan: ParallelPlan, seq_len: int
) -> tuple[list[float], list[float]]:
    """Each device's attention and MLP compute per layer (ms) under hmp `plan`, as the cost
    model prices them: an overlapped plan's ring tiles at the device's `overlap_compute`."""
    if not plan.overlap:
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


def _even_out(shares: Shares, unit: int, times: Callable[[Shares], list[float]]) -> Shares:
    """Move `unit`s from the slowest device to the one that leaves the slowest time least,
    while that lowers it (every device keeps at least one unit)."""
    current = times(shares)
    for _ in range(sum(shares) // unit):  # a bound: each move lowers the maximum
        slow = max(range(len(shares)), key=current.__getitem__)
        if shares[slow] <= unit:
            break
        best: tuple[float, Shares, list[float]] | None = None
        for dst in range(len(shares)):
            if dst == slow:
                continue
            moved = list(shares)
            moved[slow] -= unit
            moved[dst] += unit
            trial = times(tuple(moved))
            if best is None or max(trial) < best[0]:
                best = (max(trial), tuple(moved), trial)
        if best is None or best[0] >= max(current):
            break
        _, shares, current = best
    return shares
