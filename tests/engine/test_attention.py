"""The engine's attention core (`edge_worker/engine/attention.py`) against explicit softmax
attention over the full score matrix, in every case the engine calls it with."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from edge_worker.engine import attention
from edge_worker.engine.layers import attend


def explicit(
    q: Tensor, k: Tensor, v: Tensor, causal: bool, q_start: int, key_mask: Tensor | None
) -> Tensor:
    """Softmax(q k^T / sqrt(hd)) v with every score materialised, masked with finfo.min."""
    b, n_heads, tq, hd = q.shape
    group = n_heads // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    scores = (q.double() @ k.double().transpose(-1, -2)) / math.sqrt(hd)
    allowed = torch.ones(1, 1, tq, k.shape[2], dtype=torch.bool)
    if causal:
        allowed = allowed & (
            torch.arange(k.shape[2])[None, :] <= torch.arange(tq)[:, None] + q_start
        )
    if key_mask is not None:
        allowed = allowed & key_mask[:, None, None, :]
    scores = scores.masked_fill(~allowed, torch.finfo(torch.float64).min)
    out = torch.softmax(scores, dim=-1) @ v.double()
    return out.transpose(1, 2).reshape(b, tq, n_heads * hd).float()


def qkv(b: int, heads: int, kv_heads: int, tq: int, tk: int, hd: int = 16) -> tuple[Tensor, ...]:
    g = torch.Generator().manual_seed(tq * 1000 + tk)
    return (
        torch.randn(b, heads, tq, hd, generator=g),
        torch.randn(b, kv_heads, tk, hd, generator=g),
        torch.randn(b, kv_heads, tk, hd, generator=g),
    )


def check(q: Tensor, k: Tensor, v: Tensor, causal: bool, q_start: int, mask: Tensor | None) -> None:
    got = attend(q, k, v, causal=causal, q_start=q_start, key_mask=mask)
    want = explicit(q, k, v, causal, q_start, mask)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("heads", "kv_heads"), [(9, 3), (6, 6), (4, 1)])
@pytest.mark.parametrize("t", [1, 7, 300])
def test_causal_prefill_from_position_zero(heads: int, kv_heads: int, t: int) -> None:
    check(*qkv(1, heads, kv_heads, t, t), causal=True, q_start=0, mask=None)


@pytest.mark.parametrize(("q_start", "tq", "tk"), [(100, 300, 400), (5, 3, 8), (600, 20, 700)])
def test_causal_rows_after_a_past_see_only_earlier_keys(q_start: int, tq: int, tk: int) -> None:
    """Sequence-parallel chunks and prompts appended to a cache: masked blocks of rows (300
    rows span two of `ROWS`); keys after the last query (tk > q_start + tq) are ignored."""
    check(*qkv(2, 9, 3, tq, tk), causal=True, q_start=q_start, mask=None)


def test_more_rows_than_one_block() -> None:
    tq = 2 * attention.ROWS + 17
    check(*qkv(1, 9, 3, tq, tq + 40), causal=True, q_start=40, mask=None)


@pytest.mark.parametrize("tk", [1, 9, 513])
def test_decode_step_sees_the_whole_cache(tk: int) -> None:
    check(*qkv(1, 9, 3, 1, tk), causal=True, q_start=tk - 1, mask=None)


@pytest.mark.parametrize("causal", [False, True])
def test_padding_is_masked(causal: bool) -> None:
    q, k, v = qkv(3, 6, 2, 12, 12)
    mask = torch.ones(3, 12, dtype=torch.bool)
    mask[1, 8:] = False  # right padding
    mask[2, :5] = False  # left padding: causally, its first rows see no key at all
    check(q, k, v, causal=causal, q_start=0, mask=mask)


def test_padding_with_a_past_and_a_decode_step() -> None:
    mask = torch.ones(2, 30, dtype=torch.bool)
    mask[0, :4] = False
    check(*qkv(2, 4, 2, 10, 30), causal=True, q_start=20, mask=mask)
    check(*qkv(2, 4, 2, 1, 30), causal=True, q_start=29, mask=mask)


def test_non_causal_encoder() -> None:
    check(*qkv(2, 12, 12, 40, 40), causal=False, q_start=0, mask=None)


def test_fully_masked_row_averages_values_instead_of_nan() -> None:
    q, k, v = qkv(1, 2, 2, 4, 4)
    mask = torch.tensor([[False, False, True, True]])
    out = attend(q, k, v, causal=True, q_start=0, key_mask=mask)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0, 0, :16], v[0, 0].mean(0), atol=1e-5, rtol=1e-5)
