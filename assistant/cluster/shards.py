"""Cutting a model into the ranks' shards for the wire, once per plan.

A shard's column slices are copies of the weights, and hashing a large model takes seconds, so
both are remembered: every shard's metadata and content hash (by the identity of the weights,
the plan and the rank), and the cut tensors of the last `keep` shards (cut again when a worker
needs one that was dropped; the benchmark keeps few with large models).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

from torch import Tensor

from edge_worker.engine.shard import shard_for_rank
from edge_worker.engine.weights import ModelWeights, flatten
from edge_worker.service import tensors as wire
from edge_worker.spec.config import ModelConfig
from edge_worker.spec.plan import ParallelPlan

ShardKey = tuple[int, ParallelPlan | None, int]  # (id(weights), plan, rank)
Flat = tuple[dict[str, Tensor], dict[str, Any]]  # a shard's named tensors and metadata


class ShardCache:
    def __init__(self, keep: int = 32) -> None:
        self.keep = keep
        # key -> (meta, hash, the weights, kept alive so their id is not reused)
        self._digests: dict[ShardKey, tuple[dict[str, Any], str, Any]] = {}
        self.kept: OrderedDict[ShardKey, Flat] = OrderedDict()

    async def cut(
        self, cfg: ModelConfig, weights: ModelWeights, plan: ParallelPlan | None, rank: int
    ) -> Flat:
        """A rank's shard (the whole model when `plan` is None), flattened for the wire. The
        last `keep` are kept: a shard's column slices are copies of the weights."""
        key = (id(weights), plan, rank if plan is not None else -1)
        if key in self.kept:
            self.kept.move_to_end(key)
            return self.kept[key]
        cut = weights if plan is None else shard_for_rank(cfg, weights, plan, rank)
        flat = await asyncio.to_thread(flatten, cut)
        if self.keep > 0:
            self.kept[key] = flat
        while len(self.kept) > self.keep:
            self.kept.popitem(last=False)
        return flat

    async def digest(
        self, cfg: ModelConfig, weights: ModelWeights, plan: ParallelPlan | None, rank: int
    ) -> tuple[dict[str, Any], str]:
        """A shard's metadata and hash, made once per (weights, plan, rank): hashing a large
        model takes seconds."""
        key = (id(weights), plan, rank if plan is not None else -1)
        if key not in self._digests:
            tensors, meta = await self.cut(cfg, weights, plan, rank)
            digest = await asyncio.to_thread(wire.content_hash, tensors, meta)
            if len(self._digests) >= 256:
                self._digests.pop(next(iter(self._digests)))
            self._digests[key] = (meta, digest, weights)
        meta, digest, _ = self._digests[key]
        return meta, digest
