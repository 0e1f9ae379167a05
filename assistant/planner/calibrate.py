"""Learning what overlap costs each device, from the requests it runs.

The cost model charges an overlapped hmp layer's ring tiles (QKV, out-projection, MLP, one per
ring chunk) `overlap_compute` times their GEMMs' measured time (profiles.py: slicing, copies,
and the ring's threads taking the cores while the tiles compute). How much more depends on the
device: its cores, what else runs on it, its link's CPU cost. After a prefill on an overlapped
plan, every device's trace gives its compute per layer (wall time less its wait on the ring,
`gate.StepRunner.trace`); the part that is not tiles (the attention core, the two connective
blocks) is priced as the cost model prices it, and what is left over the tiles' predicted time
is that device's factor for this request (the ring's CPU work, on a device where it shares the
compute's CPU, is priced apart: `cost.ring_cpu_ms`):

    learner = OverlapLearner()
    learner.observe("smollm2-135m", cfg, plan, profiles, tokens=512, layers=[[...], [...]])
    learner.factor("kitchen-pi", "smollm2-135m")    # a moving average, or None

The planner then costs overlap with each device's learned factor (`DeviceProfile.
overlap_compute`). A factor also carries the profile's own error on that device (a profile
taken on a busy machine), which is what the planner needs to predict that device's tiles.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from assistant.planner.cost import conn_ms, core_ms, ring_cpu_ms, tile_ms
from assistant.planner.learner import Prefill, TraceLearner
from assistant.planner.profiles import DeviceProfile
from edge_worker.spec.config import ModelConfig
from edge_worker.spec.plan import ParallelPlan, wire_bytes

MIN_TOKENS = 128  # shorter prefills are mostly per-tile fixed costs, unlike the plans' 256
BOUNDS = (0.5, 8.0)  # a factor outside is a measurement gone wrong (a stalled device)
SETTLED, DRIFT = 3, 0.25  # prefills before a learned factor counts; how far off re-plans


def observed_factor(
    cfg: ModelConfig,
    d: DeviceProfile,
    plan: ParallelPlan,
    rank: int,
    tokens: int,
    layer_compute_ms: Sequence[float],
) -> float | None:
    """Device `rank`'s overlap factor in one prefill of `tokens` rows: its median compute per
    layer less the untiled work, over its tiles' predicted GEMM time. None when the prefill is
    too short to tell or the figure is out of bounds."""
    if tokens < MIN_TOKENS or not layer_compute_ms:
        return None
    rows = plan.seq_split(tokens)
    tiles = sum(map(sum, tile_ms(cfg, d, plan, rank, rows)))
    if tiles <= 0:
        return None
    heads, h = plan.heads[rank], cfg.hidden_size
    chunk = [r * wire_bytes(plan.wire_dtype, h) for r in rows]
    psum = [r * wire_bytes(plan.wire_dtype, h, summed=True) for r in rows]
    untiled = (
        core_ms(cfg, d, tokens, heads, tokens)
        + 2 * conn_ms(cfg, d, rows[rank])
        + ring_cpu_ms(d, rank, chunk, psum)  # priced apart where the ring shares the CPU
    )
    factor = (statistics.median(layer_compute_ms) - untiled) / tiles
    return factor if BOUNDS[0] <= factor <= BOUNDS[1] else None


class OverlapLearner(TraceLearner):
    """Each device's overlap factor, from prefills on overlapped hmp plans."""

    settled, drift = SETTLED, DRIFT

    def observed(self, p: Prefill, rank: int, per_layer: Sequence[float]) -> float | None:
        """The factor over the measured profile: a ring slowed by a learned speed
        (`slowdown`) priced its tiles that much slower, so it is multiplied back in (as
        speed.py does); `Learning.applied` divides by the speed it applies beside it."""
        if not p.plan.overlap or p.plan.strategy != "hmp" or len(p.ring) < 2:
            return None
        d = p.ring[rank]
        factor = observed_factor(p.cfg, d, p.plan, rank, p.tokens, per_layer)
        return None if factor is None else factor * d.slowdown

    def planned(self, d: DeviceProfile) -> float:
        return d.overlap_compute * d.slowdown
