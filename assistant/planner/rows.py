"""sp's rows per device, balanced by the cost model rather than by speed alone.

A causal decoder's sequence-parallel chunk reads the keys up to itself, so the last chunks of a
long prompt cost more per row than the first (`cost.sp_keys`): rows in proportion to each
device's GEMM speed left the ring's last device computing a third longer than the others
(smollm2-135m, 2048 tokens, the reference home: the bench's "sp by speed"). Here each device
takes, in ring order, as many rows as it computes within one common time, the least time
for which the rows cover the prompt.
"""

from __future__ import annotations

from collections.abc import Sequence

from assistant.planner.cost import sp_rank_ms
from assistant.planner.profiles import DeviceProfile
from edge_worker.spec.config import ModelConfig

STEPS = 24  # bisections of the common time: within 2^-24 of the slowest device alone


def balanced_rows(cfg: ModelConfig, ring: Sequence[DeviceProfile], seq_len: int) -> tuple[int, ...]:
    """Rows per device of `ring` (in ring order, summing to `seq_len`) that the cost model
    predicts all take about the same time per layer."""
    if len(ring) == 1:
        return (seq_len,)
    lo, hi = 0.0, max(sp_rank_ms(cfg, d, 0, seq_len, seq_len) for d in ring)
    for _ in range(STEPS):
        mid = (lo + hi) / 2
        if sum(_fill(cfg, ring, seq_len, mid)) >= seq_len:
            hi = mid
        else:
            lo = mid
    rows = _fill(cfg, ring, seq_len, hi)
    rows[-1] += seq_len - sum(rows)  # (never negative: at `hi` the rows cover the prompt)
    return tuple(rows)


def _fill(cfg: ModelConfig, ring: Sequence[DeviceProfile], seq_len: int, ms: float) -> list[int]:
    """The most rows each device computes within `ms`, in ring order from the first row, up
    to the prompt's end."""
    rows, start = [], 0
    for d in ring:
        lo, hi = 0, seq_len - start  # the most rows r with sp_rank_ms(start, r) <= ms
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if sp_rank_ms(cfg, d, start, mid, seq_len) <= ms:
                lo = mid
            else:
                hi = mid - 1
        rows.append(lo)
        start += lo
    return rows
