"""FLOP and parameter counts of one layer's pieces, shared by the profiler (which turns its
timings into GFLOP/s) and the planner's cost model (which turns GFLOP/s back into time), so the
two always count alike. Pure arithmetic: no torch here."""

from __future__ import annotations

from edge_worker.spec.config import ModelConfig


def qkv_flops(cfg: ModelConfig, rows: int, heads: int) -> float:
    """Q, K and V projections of `heads` query heads (and their share of KV heads)."""
    return 2.0 * rows * cfg.hidden_size * (heads + 2 * heads // cfg.group_size) * cfg.head_dim


def out_flops(cfg: ModelConfig, rows: int, heads: int) -> float:
    return 2.0 * rows * heads * cfg.head_dim * cfg.hidden_size


def proj_flops(cfg: ModelConfig, rows: int, heads: int) -> float:
    """All of the attention block's projections: QKV and out."""
    return qkv_flops(cfg, rows, heads) + out_flops(cfg, rows, heads)


def core_flops(cfg: ModelConfig, q_rows: int, k_rows: int, heads: int) -> float:
    """Softmax attention: QK^T and PV (4 Tq Tk H d), the softmax (5 Tq Tk H)."""
    return 4.0 * q_rows * k_rows * heads * cfg.head_dim + 5.0 * q_rows * k_rows * heads


def mlp_flops(cfg: ModelConfig, rows: int, cols: int) -> float:
    return 2.0 * rows * cfg.hidden_size * cols * (3 if cfg.gated_mlp else 2)


def layer_params(cfg: ModelConfig, heads: int, cols: int) -> float:
    """Weights of one layer's share of `heads` query heads and `cols` MLP columns."""
    kv = heads // cfg.group_size
    attn = cfg.hidden_size * cfg.head_dim * (2 * heads + 2 * kv)
    return attn + cfg.hidden_size * cols * (3 if cfg.gated_mlp else 2)
