"""The wire formats of engine/wire.py: int8 with a scale per tile of a row, and float casts."""

from __future__ import annotations

import math

import pytest
import torch

from edge_worker.comm.local import LocalGroup
from edge_worker.engine.wire import TILE, Wire, dequantize, packed_width, quantize


def tile_steps(x: torch.Tensor) -> torch.Tensor:
    """One int8 step (max |tile| / 127) for every value of x (..., d)."""
    d = x.shape[-1]
    k = -(-d // TILE)
    padded = torch.nn.functional.pad(x.abs(), (0, k * TILE - d)).unflatten(-1, (k, TILE))
    step = padded.amax(dim=-1, keepdim=True).expand(*padded.shape) / 127
    return step.flatten(-2)[..., :d]


@pytest.mark.parametrize("d", [96, 100, 7, 32])
def test_int8_round_trip_is_within_half_a_step_of_each_tile(d: int) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 7, d, generator=gen) * torch.logspace(-3, 3, 7).view(1, 7, 1)
    packed = quantize(x)
    assert packed.dtype == torch.int8 and packed.shape == (2, 7, packed_width(d))
    back = dequantize(packed, torch.float32)
    assert back.shape == x.shape
    assert ((back - x).abs() <= tile_steps(x) / 2 * (1 + 1e-5)).all()
    # The largest value of every row is exact up to fp32 rounding.
    idx = x.abs().argmax(dim=-1, keepdim=True)
    assert torch.allclose(back.gather(-1, idx), x.gather(-1, idx), rtol=1e-6, atol=0)


def test_an_outlier_costs_only_its_own_tile() -> None:
    x = torch.full((1, 64), 0.01)
    x[0, 3] = 1000.0  # tile 0's scale is set by the outlier; tile 1 keeps full precision
    back = dequantize(quantize(x), torch.float32)
    assert back[0, 1] == 0.0
    assert (back[0, 32:] - x[0, 32:]).abs().max() <= 1e-7


def test_packed_width_is_one_byte_a_value_plus_four_a_tile() -> None:
    assert [packed_width(d) for d in (1, 32, 33, 384, 576)] == [5, 36, 41, 432, 648]


def test_zero_rows_come_back_exactly_zero() -> None:
    x = torch.zeros(3, 5, 16)
    x[1, 2] = torch.linspace(-1, 1, 16)
    back = dequantize(quantize(x), torch.float32)
    assert torch.equal(back[0], torch.zeros(5, 16))
    assert torch.equal(back[1, 0], torch.zeros(16))
    assert (back[1, 2] - x[1, 2]).abs().max() <= 1 / 254 + 1e-7


def test_extreme_magnitudes_keep_their_scale() -> None:
    x = torch.tensor([[3.0e38, -1.0e38, 1.0], [1e-30, -2e-30, 0.0], [65504.0, 1e5, -7.0]])
    back = dequantize(quantize(x), torch.float32)
    assert torch.isfinite(back).all()
    assert ((back - x).abs() <= tile_steps(x) / 2 * (1 + 1e-5)).all()
    assert back[0, 0] == pytest.approx(3.0e38, rel=1e-6)
    assert back[1, 1] == pytest.approx(-2e-30, rel=1e-6)


def test_a_tile_with_inf_or_nan_arrives_as_nan_and_other_tiles_are_untouched() -> None:
    x = torch.ones(3, 40)
    x[0, 1], x[1, 35] = math.inf, math.nan
    back = dequantize(quantize(x), torch.float32)
    assert back[0, :32].isnan().all() and torch.equal(back[0, 32:], x[0, 32:])
    assert back[1, 32:].isnan().all() and torch.equal(back[1, :32], x[1, :32])
    assert torch.equal(back[2], x[2])


def test_dequantize_gives_the_dtype_asked_for() -> None:
    x = torch.randn(4, 8, dtype=torch.bfloat16)
    assert dequantize(quantize(x), torch.bfloat16).dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("name", "sent", "summed"),
    [
        ("float32", torch.float32, torch.float32),
        ("float16", torch.float16, torch.float16),
        ("bfloat16", torch.bfloat16, torch.bfloat16),
        ("int8", torch.int8, torch.float16),
    ],
)
def test_wire_formats(name: str, sent: torch.dtype, summed: torch.dtype) -> None:
    wire = Wire(name)
    x = torch.randn(1, 6, 32)
    assert wire.pack(x).dtype == sent
    assert wire.reduce_dtype == summed
    assert wire.unpack(wire.pack(x), torch.float32).shape == x.shape


def test_packed_int8_rows_survive_an_uneven_all_gather() -> None:
    """Rows keep their scales when gathered along the sequence (dim 1) or K/V's dim 2."""
    wire = Wire("int8")
    sizes = [1, 3, 2]
    gen = torch.Generator().manual_seed(1)
    for dim, shape in ((1, (2, 0, 48)), (2, (2, 3, 0, 8))):
        parts = []
        for s in sizes:
            size = list(shape)
            size[dim] = s
            parts.append(torch.randn(*size, generator=gen) * 10)
        whole = torch.cat(parts, dim=dim)
        group = LocalGroup(3)
        works = [c.all_gather_async(wire.pack(parts[c.rank]), sizes, dim) for c in group.comms]
        expected = dequantize(quantize(whole), torch.float32)
        for work in works:
            assert torch.equal(wire.unpack(work.wait(), torch.float32), expected)
        group.close()
