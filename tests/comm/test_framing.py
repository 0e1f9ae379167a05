"""The ring's wire format as pure functions: headers, hellos, shapes and piece boundaries."""

from __future__ import annotations

import itertools

import pytest
import torch

from edge_worker.comm import framing as F


@pytest.mark.parametrize("op", list(F.Op))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.int64])
def test_a_frame_header_round_trips(op: F.Op, dtype: torch.dtype) -> None:
    raw = F.encode_header(op, dtype, call=7, step=3, piece=2, nbytes=(1 << 40) + 5)

    assert len(raw) == F.FRAME_BYTES
    assert F.decode_header(raw) == F.Header(op, dtype, 7, 3, 2, (1 << 40) + 5)


def test_a_header_with_a_bad_magic_is_rejected() -> None:
    raw = b"HTTP" + F.encode_header(F.Op.ALL_GATHER, torch.float32, 0, 0, 0, 4)[4:]

    with pytest.raises(ValueError, match="bad frame magic"):
        F.decode_header(raw)


def test_a_header_of_another_version_is_rejected() -> None:
    raw = bytearray(F.encode_header(F.Op.ALL_GATHER, torch.float32, 0, 0, 0, 4))
    raw[4] = F.VERSION + 1

    with pytest.raises(ValueError, match="version"):
        F.decode_header(raw)


def test_a_truncated_header_is_rejected() -> None:
    raw = F.encode_header(F.Op.ALL_GATHER, torch.float32, 0, 0, 0, 4)

    with pytest.raises(ValueError, match="expected 28"):
        F.decode_header(raw[:-1])


@pytest.mark.parametrize(("offset", "value", "message"), [(5, 99, "op code"), (6, 99, "dtype")])
def test_unknown_op_and_dtype_codes_are_rejected(offset: int, value: int, message: str) -> None:
    raw = bytearray(F.encode_header(F.Op.ALL_GATHER, torch.float32, 0, 0, 0, 4))
    raw[offset] = value

    with pytest.raises(ValueError, match=message):
        F.decode_header(raw)


def test_a_dtype_the_ring_cannot_carry_is_named() -> None:
    with pytest.raises(ValueError, match="complex64"):
        F.encode_header(F.Op.SEND_DATA, torch.complex64, 0, 0, 0, 8)


def test_a_hello_round_trips_with_its_token() -> None:
    raw = F.encode_hello(rank=2, world_size=5, token=b"s3cret")

    hello = F.decode_hello(raw[: F.HELLO_BYTES])

    assert hello == F.Hello(2, 5, 6)
    assert raw[F.HELLO_BYTES :] == b"s3cret"


def test_a_hello_with_a_bad_magic_or_truncated_is_rejected() -> None:
    raw = F.encode_hello(0, 2, b"t")

    with pytest.raises(ValueError, match="bad hello magic"):
        F.decode_hello(b"GET " + raw[4 : F.HELLO_BYTES])
    with pytest.raises(ValueError, match="expected 12"):
        F.decode_hello(raw[: F.HELLO_BYTES - 1])


def test_an_oversized_token_is_refused_both_ways() -> None:
    with pytest.raises(ValueError, match="at most"):
        F.encode_hello(0, 2, bytes(F.MAX_TOKEN_BYTES + 1))
    raw = bytearray(F.encode_hello(0, 2, b""))
    raw[10:12] = (F.MAX_TOKEN_BYTES + 1).to_bytes(2, "little")
    with pytest.raises(ValueError, match="token"):
        F.decode_hello(raw)


@pytest.mark.parametrize("shape", [(), (0,), (2, 37, 48), (1, 4, 37, 4)])
def test_a_shape_round_trips(shape: tuple[int, ...]) -> None:
    assert F.decode_shape(F.encode_shape(shape)) == shape


def test_a_malformed_shape_block_is_rejected() -> None:
    with pytest.raises(ValueError, match="int64"):
        F.decode_shape(b"\x00" * 7)
    with pytest.raises(ValueError, match="negative"):
        F.decode_shape(F.encode_shape((-1,)))


@pytest.mark.parametrize("n_elems", [1, 7, 8192, 8193, 131072, 2 * 1024 * 1024 + 3])
def test_pieces_cover_a_chunk_exactly_in_order(n_elems: int) -> None:
    bounds = F.piece_bounds(n_elems, 4)

    edges = [0] + [b for _, b in bounds]
    assert bounds == list(itertools.pairwise(edges))  # contiguous, in order
    assert edges[-1] == n_elems
    assert all(b > a for a, b in bounds)


@pytest.mark.parametrize(
    ("nbytes", "pieces"),
    [(0, 0), (4, 1), (40 * 1024, 2), (512 * 1024, 4), (8 * 1024 * 1024, 8)],
)
def test_chunks_are_cut_into_a_few_pieces_of_bounded_size(nbytes: int, pieces: int) -> None:
    bounds = F.piece_bounds(nbytes // 4, 4)

    assert len(bounds) == pieces
    assert all((b - a) * 4 <= F.MAX_PIECE_BYTES for a, b in bounds)
