"""How activations travel between ranks: the plan's `wire_dtype` turned into tensors.

- float32 / float16 / bfloat16: a cast before sending, a cast back on receipt.
- int8: each row (the last dimension) is cut into tiles of 32 values; each tile is scaled so
  that its largest magnitude becomes 127 and rounded to int8. The tiles' fp32 scales follow
  the row as 4 int8 bytes each: one tensor (..., d + 4 * ceil(d / 32)), so every collective
  and the TCP ring carry it unchanged, 1.125 bytes a value instead of fp16's 2. A value comes
  back within scale / 2 = max|tile| / 254 of what was sent. A tile holding inf or NaN comes
  back as NaN (int8 cannot carry them; the failure stays visible instead of turning into
  plausible numbers).

Why tiles and not one scale per row: the normalised hidden states of Llama-family models
have a few outlier channels that set a whole row's scale; with one scale per row SmolLM2's
logits were off by 7.3 (of 37.6), with tiles of 32 by 2.0 (DESIGN.md section 6).

Only tensors that are moved, not summed, travel as int8: all-gathers and point-to-point
sends. Partial sums (reduce-scatter, all-reduce) are added at every ring step, and int8
would have to be dequantised, added and requantised at each one, so their error grows with
the ring (DESIGN.md section 6 has the measurement); with an int8 wire they travel in fp16.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from edge_worker.spec.plan import INT8_TILE as TILE
from edge_worker.spec.plan import wire_bytes

SCALE_BYTES = 4  # one fp32 scale per tile, appended to the row as int8 bytes
QMAX = 127


def packed_width(d: int) -> int:
    """Width of a packed row of `d` values: the int8 values, then 4 bytes per tile (the
    planner's `wire_bytes` for an int8 wire)."""
    return wire_bytes("int8", d)


def quantize(x: Tensor) -> Tensor:
    """(..., d) floats -> (..., packed_width(d)) int8. The last tile of a row may be short;
    all-zero tiles get scale 0 and come back exact."""
    d = x.shape[-1]
    tiles = -(-d // TILE)
    xt = _pad(x.float(), tiles * TILE - d).unflatten(-1, (tiles, TILE))  # (..., k, 32)
    amax = xt.abs().amax(dim=-1, keepdim=True)  # (..., k, 1); NaN if the tile holds a NaN
    bad = ~torch.isfinite(amax)
    scale = torch.where(bad, torch.nan, amax / QMAX)
    safe = torch.where(bad | (amax == 0), 1.0, scale)
    q = torch.where(bad, 0.0, xt / safe).round_().clamp_(-QMAX, QMAX).to(torch.int8)
    scale_bytes = scale.squeeze(-1).contiguous().view(torch.int8)  # (..., 4k)
    return torch.cat([q.flatten(-2)[..., :d], scale_bytes], dim=-1)


def dequantize(packed: Tensor, dtype: torch.dtype) -> Tensor:
    """The inverse of `quantize`: (..., packed_width(d)) int8 -> (..., d) in `dtype`."""
    tiles = -(-packed.shape[-1] // (TILE + SCALE_BYTES))  # packed_width is 36 per whole tile
    d = packed.shape[-1] - SCALE_BYTES * tiles
    q = _pad(packed[..., :d].float(), tiles * TILE - d).unflatten(-1, (tiles, TILE))
    scale = packed[..., d:].contiguous().view(torch.float32).unsqueeze(-1)  # (..., k, 1)
    return (q * scale).flatten(-2)[..., :d].to(dtype)


def _pad(x: Tensor, extra: int) -> Tensor:
    """`extra` zeros after the last dimension (a short last tile); no copy when none."""
    return F.pad(x, (0, extra)) if extra else x


@dataclass(frozen=True)
class Wire:
    """The wire format of a plan: `pack` what is moved whole (gathers, sends), `unpack` it on
    receipt; partial sums travel in `reduce_dtype`. int8 packs along the last dimension, so
    a packed tensor may be gathered along any other dimension."""

    name: str  # a plan's wire_dtype: float32 | float16 | bfloat16 | int8

    @property
    def quantized(self) -> bool:
        return self.name == "int8"

    @property
    def reduce_dtype(self) -> torch.dtype:
        return torch.float16 if self.quantized else getattr(torch, self.name)

    def pack(self, x: Tensor) -> Tensor:
        return quantize(x) if self.quantized else x.to(self.reduce_dtype)

    def unpack(self, y: Tensor, dtype: torch.dtype) -> Tensor:
        return dequantize(y, dtype) if self.quantized else y.to(dtype)
