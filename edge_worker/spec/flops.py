"""FLOP and parameter counts of one layer's pieces, shared by the profiler (which turns its
timings into GFLOP/s) and the planner's cost model (which turns GFLOP/s back into time), so the
two always count alike. Pure arithmetic: no torch here."""

from __future__ import annotations

from edge_worker.spec.config import ModelConfig

# Query rows per block where causal attention needs a mask (a sequence-parallel chunk after
# the first: engine/attention.py): each block reads the keys up to its last row, so the work
# of a chunk depends on it (the cost model's `sp_keys`).
ATTENTION_ROWS = 256


def _kv(cfg: ModelConfig, heads: int, kv: int | None) -> int:
    """`kv` key/value heads if given (a share that splits groups replicates some), else the
    whole groups of `heads` query heads."""
    return heads // cfg.group_size if kv is None else kv


def qkv_flops(cfg: ModelConfig, rows: int, heads: int, kv: int | None = None) -> float:
    """Q, K and V projections of `heads` query heads and `kv` key/value heads (default: their
    whole groups' share; pass the rank's count, replicas included, for a split group)."""
    return 2.0 * rows * cfg.hidden_size * (heads + 2 * _kv(cfg, heads, kv)) * cfg.head_dim


def out_flops(cfg: ModelConfig, rows: int, heads: int) -> float:
    return 2.0 * rows * heads * cfg.head_dim * cfg.hidden_size


def proj_flops(cfg: ModelConfig, rows: int, heads: int, kv: int | None = None) -> float:
    """All of the attention block's projections: QKV and out."""
    return qkv_flops(cfg, rows, heads, kv) + out_flops(cfg, rows, heads)


def core_flops(cfg: ModelConfig, q_rows: int, k_rows: int, heads: int) -> float:
    """Softmax attention: QK^T and PV (4 Tq Tk H d), the softmax (5 Tq Tk H)."""
    return 4.0 * q_rows * k_rows * heads * cfg.head_dim + 5.0 * q_rows * k_rows * heads


def mlp_flops(cfg: ModelConfig, rows: int, cols: int) -> float:
    return 2.0 * rows * cfg.hidden_size * cols * (3 if cfg.gated_mlp else 2)


def layer_params(cfg: ModelConfig, heads: int, cols: int, kv: int | None = None) -> float:
    """Weights of one layer's share of `heads` query heads, `kv` key/value heads (as in
    `qkv_flops`) and `cols` MLP columns."""
    attn = cfg.hidden_size * cfg.head_dim * (2 * heads + 2 * _kv(cfg, heads, kv))
    return attn + cfg.hidden_size * cols * (3 if cfg.gated_mlp else 2)
