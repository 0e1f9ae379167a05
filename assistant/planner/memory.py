"""How much memory one rank needs under a plan: weights, KV cache and peak activations.

Pure arithmetic over the model config and the plan, like the cost model; the planner keeps
each device within its budget with it (Galaxy's memory rule, `planner.fit_memory`).
"""

from __future__ import annotations

from edge_worker.spec.config import ModelConfig
from edge_worker.spec.flops import layer_params
from edge_worker.spec.plan import ParallelPlan, kv_heads


def memory_mb(
    cfg: ModelConfig, plan: ParallelPlan, rank: int, seq_len: int, bytes_per: int = 4
) -> float:
    """Weights + KV cache + peak activations one rank needs under `plan` (MB). Under tp/hmp a
    rank holds and caches the K/V heads of every group its query heads touch (replicas of a
    split group count on every rank that holds them)."""
    h, t, v = cfg.hidden_size, seq_len, cfg.vocab_size
    s = plan.strategy
    embed = v * h
    if s in ("local", "sp"):
        heads, cols, layers = cfg.n_heads, cfg.intermediate_size, cfg.n_layers
        kv = cfg.n_kv_heads
    elif s == "pp":
        heads, cols, layers = cfg.n_heads, cfg.intermediate_size, plan.layers[rank]
        embed = v * h if rank in (0, plan.world_size - 1) else 0
        kv = cfg.n_kv_heads
    else:
        heads, cols, layers = plan.heads[rank], plan.mlp_columns[rank], cfg.n_layers
        kv = kv_heads(cfg, plan)[rank]
    weights = layers * layer_params(cfg, heads, cols, kv) + embed
    if s == "hmp" and plan.decode == "local" and rank == plan.world_size - 1:
        weights += cfg.n_layers * layer_params(cfg, cfg.n_heads, cfg.intermediate_size)
    cache = 2 * t * kv * cfg.head_dim * layers if cfg.causal else 0
    activations = t * (6 * h + cols) + heads * t * t  # hidden states, MLP rows, scores
    return (weights + cache + activations) * bytes_per / 2**20
