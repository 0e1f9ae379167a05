"""What a worker runs: a plan it is part of (its ring and its rank's model), and one request
on it, measured (where the time went: compute, waiting on the ring, bytes moved)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from edge_worker.comm import waits
from edge_worker.comm.tcp import TcpRingCommunicator
from edge_worker.engine.model import RankModel, RankOutput
from edge_worker.engine.weights import ModelWeights
from edge_worker.profile.compute import peak_rss_mb
from edge_worker.service import protocol as P
from edge_worker.service import tensors as wire
from edge_worker.spec.config import ModelConfig
from edge_worker.spec.plan import ParallelPlan


@dataclass
class Deployment:
    comm: TcpRingCommunicator
    model: RankModel


@dataclass
class LoadedShard:
    """A plan whose shard arrived (Assign), waiting for Connect to join its ring."""

    assign: P.Assign
    cfg: ModelConfig
    plan: ParallelPlan
    weights: ModelWeights
    full: ModelWeights | None


@waits.stretched_run()  # a development worker emulating a slow device (comm/waits.py)
def execute(dep: Deployment, msg: P.Run) -> tuple[RankOutput | None, dict[str, Any]]:
    """On the compute thread: run the request and measure where the time went."""
    stats = dep.comm.stats
    wait0, sent0, recv0 = stats.wait_s, stats.bytes_sent, stats.bytes_received
    t0 = time.perf_counter()
    ids = torch.tensor(msg.input_ids)
    if msg.op == "prefill":
        mask = None if msg.attention_mask is None else torch.tensor(msg.attention_mask)
        types = None if msg.token_type_ids is None else torch.tensor(msg.token_type_ids)
        out = dep.model.prefill(ids, types, mask, want=msg.want, session=msg.session)
    else:
        out = dep.model.decode(ids, session=msg.session)
    total = time.perf_counter() - t0
    wait = stats.wait_s - wait0
    trace = {
        "total_ms": total * 1e3,
        "compute_ms": (total - wait) * 1e3,
        "comm_wait_ms": wait * 1e3,
        "bytes_sent": stats.bytes_sent - sent0,
        "bytes_received": stats.bytes_received - recv0,
        "peak_rss_mb": peak_rss_mb(),
        "layers": [
            {"compute_ms": (t - w) * 1e3, "comm_ms": w * 1e3, "cpu_ms": c * 1e3}
            for t, w, c in dep.model.trace
        ],
    }
    return out, trace


def answer(
    dep: Deployment, msg: P.Run, out: RankOutput | None, trace: dict[str, Any]
) -> tuple[P.Result, list[bytes]]:
    """The Result of a run and the tensor frames that follow it (this rank's rows)."""
    names: list[Literal["hidden", "logits"]] = []
    frames = []
    if out is not None:
        parts: list[tuple[Literal["hidden", "logits"], Tensor | None]] = [
            ("hidden", out.hidden),
            ("logits", out.logits),
        ]
        for name, t in parts:
            if t is not None:
                names.append(name)
                frames.append(wire.encode(name, t))
    seq = out.seq if out is not None else range(0, 0)
    result = P.Result(
        run_id=msg.run_id,
        rank=dep.model.rank,
        seq_start=seq.start,
        seq_stop=seq.stop,
        tensors=names,
        **trace,
    )
    return result, frames
