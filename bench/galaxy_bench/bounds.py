"""What no plan can beat, beside every measured variant (issue 16).

- compute-only bound: all of a prefill's FLOPs (every layer's projections, attention core and
  MLP) spread over every device of the home at its measured speed, with no communication at
  all: the latency of a perfect split on free links.
- wire-only bound of a plan: the cost model's prediction for that plan with the devices'
  compute made free (`free_compute`): only the ring's transfers and hop latencies are left,
  the least time its communication takes if none of it were hidden.

`gap_closed` says what share of hmp's distance to the compute-only bound the overlap removed:
(hmp - hmp+overlap) / (hmp - compute bound).
"""

from __future__ import annotations

from collections.abc import Sequence

from assistant.planner.cost import predict
from assistant.planner.profiles import DeviceProfile
from edge_worker.spec.config import ModelConfig
from edge_worker.spec.flops import core_flops, mlp_flops, proj_flops
from edge_worker.spec.plan import ParallelPlan

FREE = 1e9  # GFLOP/s of a device whose compute costs nothing measurable


def prefill_flops(cfg: ModelConfig, seq: int) -> float:
    """FLOPs of one prefill of `seq` tokens through every layer (norms and adds left out)."""
    per_layer = (
        proj_flops(cfg, seq, cfg.n_heads)
        + core_flops(cfg, seq, seq, cfg.n_heads)
        + mlp_flops(cfg, seq, cfg.intermediate_size)
    )
    return cfg.n_layers * per_layer


def compute_bound_ms(cfg: ModelConfig, seq: int, devices: Sequence[DeviceProfile]) -> float:
    """The prefill's FLOPs over the sum of every device's measured speed (ms)."""
    return prefill_flops(cfg, seq) / (sum(d.gflops for d in devices) * 1e9) * 1e3


def free_compute(d: DeviceProfile) -> DeviceProfile:
    """`d` with the same memory and link but compute that costs nothing."""
    return d.model_copy(
        update={
            "gflops": FREE,
            "gemv_gflops": FREE,
            "proj_grid": [(m, n, FREE) for m, n, _ in d.proj_grid or []] or None,
            "mlp_grid": [(m, n, FREE) for m, n, _ in d.mlp_grid or []] or None,
            "attention_curve": [(e, FREE) for e, _ in d.attention_curve or []] or None,
            "connective_ns": 0.0 if d.connective_ns is not None else None,
            "decode_points": None,
        }
    )


def wire_bound_ms(
    cfg: ModelConfig, ring: Sequence[DeviceProfile], plan: ParallelPlan, seq: int
) -> float:
    """The cost model's prefill time of `plan` on `ring` with free compute (ms)."""
    return predict(cfg, [free_compute(d) for d in ring], plan, seq).total_ms


def gap_closed(hmp_ms: float, overlap_ms: float, bound_ms: float) -> float | None:
    """Share of hmp's distance to the compute-only bound that the overlap removed."""
    gap = hmp_ms - bound_ms
    return (hmp_ms - overlap_ms) / gap if gap > 0 else None
