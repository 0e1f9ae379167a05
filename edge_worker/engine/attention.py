"""Softmax attention without a full (heads x queries x keys) score matrix.

`attend` runs torch's `scaled_dot_product_attention`, whose CPU kernel is flash-style: it walks
query and key blocks with an online softmax, so memory stays O(T x head_dim) whatever the
sequence, and with `is_causal` it skips the key blocks above the diagonal (half the work of a
prefill). Grouped-query K/V go in as they are (`enable_gqa`): no per-call copy of the cache,
which the explicit path paid on every decode step.

Which cases take which call:
- no padding, and either non-causal, a causal prefill from position 0 (Tq == Tk), or a causal
  single query (a decode step): one call with no mask tensor at all;
- anything else (padding, or several causal queries after a past: sequence-parallel chunks,
  a prompt appended to a cache): blocks of `ROWS` query rows, each against only the keys its
  last row may see, with an additive mask of that block (finfo.min where masked: a row with no
  allowed key averages every value, as the explicit path did, instead of giving NaN or 0).

Measured before choosing (one torch thread, fp32, min of 3, this 2-core AMD EPYC with other
jobs running; `.venv/bin/python -m galaxy_bench.attention_sizes` prints the same comparison),
ms for one call, explicit matmuls (the engine's path before) against this module:
- SmolLM2-135M shapes (9 query heads, 3 K/V heads, head_dim 64), causal prefill: T=512 27.7
  vs 13.2, T=1024 252 vs 35.7, T=2048 1863 vs 213 (another run: 1040 vs 125); 4 heads (one
  device's share) at T=2048: 551 vs 79. Past T=512 the explicit (9, T, T) fp32 scores (151 MB
  at 2048) leave the cache and it slows down sharply.
- small sizes: SDPA won everywhere too (no crossover): T=8 0.18 vs 0.035, T=128 3.2 vs 1.3;
  non-causal bert-large heads (16 x 64) T=512 100 vs 31; MiniLM (12 x 32) T=32 0.11 vs 0.06;
  padded batch of 4, T=64 1.68 vs 1.14.
- decode, one query against a cache of Tk: Tk=128 0.16 vs 0.026, Tk=2048 6.6 vs 0.45 (the
  explicit path repeated K/V per group every step).
- sequence-parallel chunk (the last third of 2048 queries against all keys): one masked call
  85.8, blocks of 256 rows 75.6 (128: 83.3, 64: 86.4); explicit 695.
- peak memory growth at T=8192, 9 heads: is_causal 25 MB (the output is 19 MB), one (T, T)
  additive mask 580 MB, explicit scores 2331 MB.
Differences from the explicit path: at most 1e-6 on unit-variance inputs.
`python -m galaxy_bench.attention_sizes` once more, with the machine so loaded that it got 17%
of a core (2026-12-02): prefill T=512 69.5 vs 18.5, T=1024 515 vs 64.8, T=2048 2490 vs 329;
chunk 682 x 2048 1485 vs 804; decode Tk=2048 3.07 vs 0.51.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from edge_worker.spec.flops import ATTENTION_ROWS

ROWS = ATTENTION_ROWS  # query rows per masked block: its mask is ROWS x keys (8 MB at 8192
# keys, fp32)


def attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    causal: bool,
    q_start: int,
    key_mask: Tensor | None = None,
) -> Tensor:
    """Softmax attention of q over k, v.

    q: (B, n_heads, Tq, hd) for query positions q_start .. q_start+Tq-1;
    k, v: (B, n_kv_heads, Tk, hd) for key positions 0 .. Tk-1 (n_heads a multiple of
    n_kv_heads: query head i reads K/V head i // (n_heads // n_kv_heads));
    key_mask: (B, Tk) bool, False for padding. Returns (B, Tq, n_heads * hd).
    """
    b, n_heads, tq, hd = q.shape
    if causal:  # keys after the last query are masked for every row: never read them
        tk = min(k.shape[2], q_start + tq)
        k, v = k[:, :, :tk], v[:, :, :tk]
        key_mask = key_mask[:, :tk] if key_mask is not None else None
    gqa = k.shape[1] != n_heads
    tk = k.shape[2]
    if key_mask is None and (not causal or tq == 1 or (q_start == 0 and tq == tk)):
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal and tq > 1, enable_gqa=gqa)
    else:  # a causal mask differs by row: blocks of rows; padding alone is one (B, Tk) row
        step = ROWS if causal else tq
        out = torch.cat(
            [
                _masked_rows(q, k, v, causal, q_start, key_mask, range(r, min(tq, r + step)), gqa)
                for r in range(0, tq, step)
            ],
            dim=2,
        )
    return out.transpose(1, 2).reshape(b, tq, n_heads * hd)  # (B, Tq, n_heads * hd)


def _masked_rows(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    causal: bool,
    q_start: int,
    key_mask: Tensor | None,
    rows: range,
    gqa: bool,
) -> Tensor:
    """Query rows `rows` of q against the keys they may see: (B, n_heads, len(rows), hd)."""
    tk = min(k.shape[2], q_start + rows.stop) if causal else k.shape[2]
    allowed = torch.ones(1, 1, 1, tk, dtype=torch.bool, device=q.device)
    if causal:
        qpos = torch.arange(q_start + rows.start, q_start + rows.stop, device=q.device)
        allowed = allowed & (torch.arange(tk, device=q.device)[None, :] <= qpos[:, None])
    if key_mask is not None:
        allowed = allowed & key_mask[:, None, None, :tk].bool()  # (B, 1, rows or 1, tk)
    mask = torch.zeros(allowed.shape, dtype=q.dtype, device=q.device)
    mask.masked_fill_(~allowed, torch.finfo(q.dtype).min)
    return F.scaled_dot_product_attention(
        q[:, :, rows.start : rows.stop], k[:, :, :tk], v[:, :, :tk], attn_mask=mask, enable_gqa=gqa
    )
