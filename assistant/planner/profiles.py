"""What the planner knows about each device: measured speed, memory, link.

The profile file of `galaxy plan` (DESIGN.md section 5):

    {"devices": [{"name": "kitchen-pi", "gflops": 20.0, "memory_mb": 4096,
                  "bandwidth_mbps": 100, "latency_ms": 1.0}, ...]}

Measured profiles (the gateway's, the benchmark's) add what the worker timed at the model's
real shapes (edge_worker/profile/compute.py): GFLOP/s of the attention projections and of the
MLP block by (rows, share of the layer), of the attention core by the size of its score matrix,
the connective block's ns per element, and the ms of one decode step through one layer by the
layer share's parameter count.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge_worker.errors import PlanError

# Overlapped layers spend more compute than their tiles' GEMMs at measured speed: slicing,
# concatenation, and the compute thread sharing the cores with the ring's threads while
# transfers run. The prior, from `galaxy bench` (bert-large-shape, 3 devices, 1000 Mbit/s: the
# slowest device's compute 1374 ms with overlap against 1197 without); the gateway learns each
# device's own from the traces of the requests it runs (planner/calibrate.py).
OVERLAP_COMPUTE = 1.15
# CPU ms the ring spends per MB a device receives (and passes on), on one core, for a worker
# that does not measure it (one older than protocol 5): 2.96 ms per MB of a 3-way
# collective's payload for the TLS-record ring in the data plane A/B (bench/RESULTS.md), of
# which a rank receives two thirds. Workers measure their own (edge_worker/profile/ringcpu.py).
# It costs a device compute time only where the ring has no core of its own
# (`DeviceProfile.ring_cpu_ms_per_mb`).
RING_CPU_MS_PER_MB = 4.4


def ring_cpu_cost(
    cores: float | None, compute_threads: int, measured_ms_per_mb: float | None = None
) -> float:
    """Compute ms per MB received that the ring's CPU work takes from a device with `cores`
    of CPU (its cores, or its cgroup quota) running `compute_threads` compute threads: none
    when a whole core is left beside them for the ring, else the ring's CPU per MB on one
    core (the worker's measurement, else `RING_CPU_MS_PER_MB`) at the device's share of a
    core. `cores` None: not reported (an older worker), assumed spare."""
    if cores is None or cores - compute_threads >= 1:
        return 0.0
    per_core = measured_ms_per_mb or RING_CPU_MS_PER_MB
    return per_core / max(0.01, min(cores, compute_threads))


def interpolate(points: list[tuple[int, float]], x: float) -> float:
    """Piecewise-linear in log(x) through measured (x, value) points (repeated x averaged),
    flat beyond the ends."""
    merged: dict[int, list[float]] = {}
    for px, py in points:
        merged.setdefault(px, []).append(py)
    pts = sorted((px, sum(ys) / len(ys)) for px, ys in merged.items())
    if x <= pts[0][0]:
        return pts[0][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(pts):
        if x <= x1:
            f = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
            return y0 + f * (y1 - y0)
    return pts[-1][1]


class DeviceProfile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    gflops: float = Field(gt=0, description="measured GEMM throughput at the model's shapes")
    memory_mb: float = Field(gt=0, description="memory the device can give to the model")
    bandwidth_mbps: float = Field(gt=0, description="link speed to the home network")
    latency_ms: float = Field(default=0.5, ge=0, description="one-way link latency")
    reserve_mb: float = Field(default=0, ge=0, description="memory kept back for the system")
    gemv_gflops: float | None = Field(
        default=None, gt=0, description="throughput of one-token steps (default gflops / 4)"
    )
    proj_grid: list[tuple[int, int, float]] | None = Field(
        default=None,
        min_length=1,
        description="measured (rows, heads, GFLOP/s) of the QKV + out projections",
    )
    mlp_grid: list[tuple[int, int, float]] | None = Field(
        default=None, min_length=1, description="measured (rows, columns, GFLOP/s) of the MLP"
    )
    attention_curve: list[tuple[int, float]] | None = Field(
        default=None,
        min_length=1,
        description="measured (score elements = heads x queries x keys, GFLOP/s) of attention",
    )
    connective_ns: float | None = Field(
        default=None, gt=0, description="measured ns per element of a norm + residual add"
    )
    decode_points: list[tuple[int, float]] | None = Field(
        default=None,
        min_length=1,
        description="measured (layer parameters, ms) of one decode step through one layer",
    )
    overlap_compute: float = Field(
        default=OVERLAP_COMPUTE,
        gt=0,
        description="compute of overlapped tiles over the same GEMMs unsplit (learned from "
        "traces: planner/calibrate.py)",
    )
    slowdown: float = Field(
        default=1.0,
        gt=0,
        description="how much slower than measured its prefill compute is planned, learned from "
        "traces (planner/speed.py; `slower`)",
    )
    ring_cpu_ms_per_mb: float = Field(
        default=0.0,
        ge=0,
        description="compute ms the ring's CPU work takes from this device per MB it receives "
        "while tiles compute (0: the ring runs on cores the compute does not use)",
    )

    def slower(self, factor: float) -> DeviceProfile:
        """This profile with its prefill compute `factor` times slower (a speed learned from
        the requests the device ran: planner/speed.py), `slowdown` saying by how much. Decode
        steps, bound by memory rather than arithmetic, keep their measured speed."""
        if factor == 1.0:
            return self

        def rates(
            points: list[tuple[int, int, float]] | None,
        ) -> list[tuple[int, int, float]] | None:
            return None if points is None else [(r, s, v / factor) for r, s, v in points]

        return self.model_copy(
            update={
                "gflops": self.gflops / factor,
                "gemv_gflops": self.decode_gflops,
                "proj_grid": rates(self.proj_grid),
                "mlp_grid": rates(self.mlp_grid),
                "attention_curve": None
                if self.attention_curve is None
                else [(e, v / factor) for e, v in self.attention_curve],
                "connective_ns": None
                if self.connective_ns is None
                else self.connective_ns * factor,
                "slowdown": self.slowdown * factor,
            }
        )

    @property
    def budget_mb(self) -> float:
        return self.memory_mb - self.reserve_mb

    @property
    def decode_gflops(self) -> float:
        return self.gemv_gflops if self.gemv_gflops is not None else self.gflops / 4

    def proj_gflops(self, rows: float, heads: float) -> float:
        """Throughput of the attention projections of `heads` heads over `rows` tokens."""
        return grid(self.proj_grid, rows, heads) if self.proj_grid else self.gflops

    def mlp_gflops(self, rows: float, cols: float) -> float:
        """Throughput of the MLP block's `cols` columns over `rows` tokens."""
        return grid(self.mlp_grid, rows, cols) if self.mlp_grid else self.gflops

    def attention_gflops(self, elements: float) -> float:
        """Attention-core throughput for a score matrix of `elements` (heads x queries x keys;
        the measured curve, else `gflops`)."""
        return interpolate(self.attention_curve, elements) if self.attention_curve else self.gflops

    def decode_line(self) -> tuple[float, float] | None:
        """(fixed ms, ms per parameter) of one layer's decode step, the line through the
        measured points: the fixed part is the step's many small operations, the rest streams
        each weight from memory once. None when not measured."""
        if not self.decode_points:
            return None
        pts = sorted(self.decode_points)
        (p0, ms0), (p1, ms1) = pts[0], pts[-1]
        if p1 > p0 and ms1 > ms0 and ms0 - (ms1 - ms0) / (p1 - p0) * p0 >= 0:
            slope = (ms1 - ms0) / (p1 - p0)
            return ms0 - slope * p0, slope
        return 0.0, ms1 / p1  # one point, or noise: proportional to the weights


def grid(points: list[tuple[int, int, float]], rows: float, share: float) -> float:
    """Interpolate measured (rows, share, value) points: along rows for each measured share,
    then across shares (both log-linear, flat beyond the ends)."""
    by_share: dict[int, list[tuple[int, float]]] = {}
    for r, s, v in points:
        by_share.setdefault(s, []).append((r, v))
    return interpolate([(s, interpolate(c, rows)) for s, c in by_share.items()], share)


class Home(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    devices: list[DeviceProfile] = Field(min_length=1, max_length=16)

    @model_validator(mode="after")
    def _unique_names(self) -> Home:
        names = [d.name for d in self.devices]
        if len(set(names)) != len(names):
            raise ValueError(f"device names must be unique, got {names}")
        return self


def load_home(path: Path) -> list[DeviceProfile]:
    """Read a profile file; PlanError with the offending field on bad input."""
    try:
        return Home.model_validate(json.loads(path.read_text())).devices
    except FileNotFoundError:
        raise PlanError(f"no device profile file at {path}") from None
    except json.JSONDecodeError as exc:
        raise PlanError(f"{path} is not JSON: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise PlanError(f"{path}: {problems}") from None
