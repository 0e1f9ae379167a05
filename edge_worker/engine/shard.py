"""Cut one rank's shard out of a whole model, as a plan prescribes.

    hmp, tp   every layer, but only the rank's query heads, the key/value heads of every group
              those touch (a group split over ranks is replicated on each), and MLP columns;
              embeddings, norms, the output head and row-parallel biases whole.
    sp, local the whole model.
    pp        the rank's contiguous layers; embeddings on the first rank, final norm and head
              on the last.
With `decode="local"`, the last rank additionally receives the whole model to decode alone.
"""

from __future__ import annotations

from dataclasses import replace

from edge_worker.engine.weights import ModelWeights, shard_layer
from edge_worker.spec.config import ModelConfig
from edge_worker.spec.plan import ParallelPlan, kv_range, offsets


def shard_for_rank(
    cfg: ModelConfig, full: ModelWeights, plan: ParallelPlan, rank: int
) -> ModelWeights:
    """The weights rank `rank` holds under `plan` (views or copies of `full`'s tensors)."""
    s = plan.strategy
    if s in ("local", "sp"):
        return full
    if s == "pp":
        layer_range = offsets(list(plan.layers))[rank]
        first, last = rank == 0, rank == plan.world_size - 1
        return replace(
            full,
            layers=full.layers[layer_range.start : layer_range.stop],
            first_layer=layer_range.start,
            tok_embeddings=full.tok_embeddings if first else None,
            pos_embeddings=full.pos_embeddings if first else None,
            type_embeddings=full.type_embeddings if first else None,
            embed_norm=full.embed_norm if first else None,
            final_norm=full.final_norm if last else None,
            lm_head=full.lm_head if last else None,
        )
    heads = offsets(list(plan.heads))[rank]
    kv = kv_range(cfg, heads)
    cols = offsets(list(plan.mlp_columns))[rank]
    return replace(
        full, layers=[shard_layer(layer, cfg.head_dim, heads, kv, cols) for layer in full.layers]
    )


def decodes_alone(plan: ParallelPlan, rank: int) -> bool:
    """True for the rank that needs the whole model to run decode steps by itself."""
    return plan.strategy == "hmp" and plan.decode == "local" and rank == plan.world_size - 1
