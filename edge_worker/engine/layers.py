"""The Transformer's arithmetic as plain functions over tensors (no communication here).

Every function works on whatever share of heads or columns its weights hold, so the same code
serves a whole model on one device and one rank's shard: the callers in `model.py` place the
collectives around it. `attend` (the attention core) lives in `attention.py`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from edge_worker.engine.attention import attend as attend
from edge_worker.engine.weights import MLP, Attention, ModelWeights, Norm
from edge_worker.spec.config import ModelConfig


def norm(x: Tensor, w: Norm, cfg: ModelConfig) -> Tensor:
    """LayerNorm or RMSNorm over the hidden dimension (a connective block)."""
    if cfg.norm == "layernorm":
        return F.layer_norm(x, (x.shape[-1],), w.weight, w.bias, cfg.norm_eps)
    # RMSNorm as Hugging Face computes it: in fp32, then scaled by the weight.
    x32 = x.float()
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + cfg.norm_eps)
    return w.weight * x32.to(x.dtype)


def activation(x: Tensor, cfg: ModelConfig) -> Tensor:
    if cfg.activation == "gelu":
        return F.gelu(x)
    if cfg.activation == "gelu_tanh":
        return F.gelu(x, approximate="tanh")
    if cfg.activation == "relu":
        return F.relu(x)
    return F.silu(x)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    return F.linear(x, weight, bias)


def linear_into(x: Tensor, weight: Tensor, bias: Tensor | None, out: Tensor) -> Tensor:
    """`linear(x, weight, bias)` written into `out` and returned: x (B, n, k), out (B, n, d).

    `out` may be a strided slice of a larger buffer (a tile's rows, a head group's columns,
    a ring buffer's rows): the GEMM writes there directly, with no temporary and no copy,
    whenever BLAS can (same dtype, unit stride along the last dimension). Otherwise, e.g.
    fp32 products into an fp16 wire buffer, it computes and copies. The values equal
    `linear`'s bit for bit (the same addmm/mm kernels).
    """
    if out.dtype != x.dtype or out.stride(-1) != 1 or x.dim() != 3 or out.dim() != 3:
        return out.copy_(linear(x, weight, bias))
    for b in range(x.shape[0]):
        if bias is None:
            torch.mm(x[b], weight.t(), out=out[b])
        else:
            torch.addmm(bias, x[b], weight.t(), out=out[b])
    return out


def rope_cos_sin(
    positions: Tensor, inv_freq: Tensor, scaling: float, dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """cos/sin tables for rotary embeddings at `positions`: each (T, head_dim)."""
    freqs = positions.float()[:, None] * inv_freq.float()[None, :]  # (T, head_dim/2)
    emb = torch.cat((freqs, freqs), dim=-1)  # (T, head_dim)
    return (emb.cos() * scaling).to(dtype), (emb.sin() * scaling).to(dtype)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate `x` (B, n_heads, T, head_dim) by position (Hugging Face's rotate-half layout)."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def qkv_width(w: Attention) -> int:
    """Columns of `qkv_project`'s output: this shard's query, key and value heads."""
    return w.wq.shape[0] + w.wk.shape[0] + w.wv.shape[0]


def qkv_project(x: Tensor, w: Attention, out: Tensor | None = None) -> Tensor:
    """Q, K and V projections of this shard's heads, side by side: (B, T, h) ->
    (B, T, qkv_width(w)), written into `out` when given (e.g. a tile's rows of a layer's
    buffer), each projection straight into its columns."""
    if out is None:
        out = x.new_empty((*x.shape[:-1], qkv_width(w)))
    nq, nk = w.wq.shape[0], w.wk.shape[0]
    linear_into(x, w.wq, w.bq, out[..., :nq])
    linear_into(x, w.wk, w.bk, out[..., nq : nq + nk])
    linear_into(x, w.wv, w.bv, out[..., nq + nk :])
    return out


def qkv_heads(
    y: Tensor, w: Attention, cfg: ModelConfig, rope: tuple[Tensor, Tensor] | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Split `qkv_project`'s output into heads: q (B, n_heads_per_rank, T, head_dim) and
    k, v (B, n_kv_heads_per_rank, T, head_dim), rotated when the model uses RoPE."""
    b, t, _ = y.shape
    hd = cfg.head_dim
    nq, nkv = w.wq.shape[0], w.wk.shape[0]
    q = y[..., :nq].reshape(b, t, -1, hd).transpose(1, 2)  # (B, n_heads_per_rank, T, hd)
    k = y[..., nq : nq + nkv].reshape(b, t, -1, hd).transpose(1, 2)  # (B, n_kv_per_rank, T, hd)
    v = y[..., nq + nkv :].reshape(b, t, -1, hd).transpose(1, 2)  # (B, n_kv_per_rank, T, hd)
    if rope is not None:
        cos, sin = rope
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    return q, k, v


def qkv(
    x: Tensor, w: Attention, cfg: ModelConfig, rope: tuple[Tensor, Tensor] | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Project `x` (B, T, h) to this shard's q, k, v heads (see `qkv_heads`)."""
    return qkv_heads(qkv_project(x, w), w, cfg, rope)


def mlp_partial(x: Tensor, w: MLP, cfg: ModelConfig, out: Tensor | None = None) -> Tensor:
    """This shard's columns of the MLP, down-projected: a partial sum over columns, without the
    down-projection bias (added once after the reduction). x (B, T, h) -> (B, T, h), written
    into `out` when given (e.g. the ring's reduce-scatter buffer)."""
    up = linear(x, w.w_up, w.b_up)  # (B, T, intermediate_per_rank)
    if w.w_gate is not None:
        hidden = activation(linear(x, w.w_gate), cfg) * up
    else:
        hidden = activation(up, cfg)
    if out is None:
        return linear(hidden, w.w_down)  # (B, T, h), partial over columns
    return linear_into(hidden, w.w_down, None, out)


def embed(
    cfg: ModelConfig, w: ModelWeights, ids: Tensor, types: Tensor | None, pos: range
) -> Tensor:
    """Token (+ position, + token type) embeddings of `ids` at positions `pos`: (B, T, h)."""
    assert w.tok_embeddings is not None, "this rank holds no embedding table"
    x = w.tok_embeddings[ids]  # (B, T, h)
    if w.type_embeddings is not None:
        if types is None:
            x = x + w.type_embeddings[0]
        else:
            x = x + w.type_embeddings[types[:, pos.start : pos.stop]]
    if cfg.positions == "absolute":
        assert w.pos_embeddings is not None
        idx = torch.arange(pos.start, pos.stop) + cfg.position_offset
        x = x + w.pos_embeddings[idx]
    if w.embed_norm is not None:
        x = norm(x, w.embed_norm, cfg)
    return x
