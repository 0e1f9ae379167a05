"""The TCP ring's wire format, as pure functions (no sockets), so tests can call them directly.

Two fixed-size little-endian structures, each starting with a magic and a version:

    hello  (12 bytes + token)  magic b"GXHI", version, 0, rank u16, world u16, token length u16,
                               then the token bytes. The connecting rank sends it; the accepting
                               rank checks it and answers with its own hello, or closes.
    frame  (28 bytes)          magic b"GXRF", version, op, dtype code, 0, call u32, step u32,
                               piece u32, payload bytes u64; then exactly that many raw bytes.

A frame carries one piece of one chunk of a collective (`call` is the collective's sequence
number, the same on every rank; `step` the ring step; `piece` the index within the chunk), or
one piece of a point-to-point tensor (op SEND_DATA), announced by a SEND_META frame whose
payload is the tensor's shape (int64 per dimension), or a BYE (no payload) from a rank that
closes with nothing pending, so its neighbours can tell it from a crash (a connection that
ends without BYE). Collectives carry no shape: both sides
derive every chunk's size from the call's arguments, and `piece_bounds` cuts a chunk into the
same pieces on both sides. Decoding raises `ValueError` on anything malformed.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import NamedTuple

import torch

VERSION = 1
FRAME_MAGIC = b"GXRF"
HELLO_MAGIC = b"GXHI"
MAX_TOKEN_BYTES = 1024
MAX_DIMS = 16

# A chunk is cut into pieces so a ring step can relay piece k while piece k+1 is on the wire.
# Four pieces per chunk kept a 1 Gbit/s ring at the wire bound (DESIGN.md section 6); pieces
# stay between 32 KiB (smaller ones cost more in per-frame overhead than they save) and 1 MiB.
PIECES_PER_CHUNK = 4
MIN_PIECE_BYTES = 32 * 1024
MAX_PIECE_BYTES = 1024 * 1024

_FRAME = struct.Struct("<4sBBBBIIIQ")
_HELLO = struct.Struct("<4sBBHHH")
FRAME_BYTES = _FRAME.size
HELLO_BYTES = _HELLO.size


class Op(IntEnum):
    ALL_GATHER = 1
    REDUCE_SCATTER = 2
    ALL_REDUCE = 3
    SEND_META = 4
    SEND_DATA = 5
    BYE = 6


DTYPE_CODES: dict[torch.dtype, int] = {
    torch.float32: 1,
    torch.float16: 2,
    torch.bfloat16: 3,
    torch.float64: 4,
    torch.int64: 5,
    torch.int32: 6,
    torch.int16: 7,
    torch.int8: 8,
    torch.uint8: 9,
    torch.bool: 10,
}
DTYPES: dict[int, torch.dtype] = {code: dtype for dtype, code in DTYPE_CODES.items()}


class Header(NamedTuple):
    op: Op
    dtype: torch.dtype
    call: int
    step: int
    piece: int
    nbytes: int


class Hello(NamedTuple):
    rank: int
    world_size: int
    token_bytes: int


def dtype_code(dtype: torch.dtype) -> int:
    try:
        return DTYPE_CODES[dtype]
    except KeyError:
        supported = ", ".join(str(d) for d in DTYPE_CODES)
        raise ValueError(f"the TCP ring cannot carry {dtype}; supported: {supported}") from None


def encode_header(
    op: Op, dtype: torch.dtype, call: int, step: int, piece: int, nbytes: int
) -> bytes:
    return _FRAME.pack(FRAME_MAGIC, VERSION, op, dtype_code(dtype), 0, call, step, piece, nbytes)


def decode_header(buf: bytes | bytearray | memoryview) -> Header:
    """Parse a frame header (exactly FRAME_BYTES long); ValueError if it is not ours."""
    if len(buf) != FRAME_BYTES:
        raise ValueError(f"frame header is {len(buf)} bytes, expected {FRAME_BYTES}")
    magic, version, op, code, _, call, step, piece, nbytes = _FRAME.unpack(buf)
    if magic != FRAME_MAGIC:
        raise ValueError(f"bad frame magic {bytes(magic)!r}: the peer is not a Galaxy ring rank")
    if version != VERSION:
        raise ValueError(f"frame version {version}, this rank speaks {VERSION}: upgrade both")
    if op not in Op._value2member_map_:
        raise ValueError(f"unknown frame op code {op}")
    if code not in DTYPES:
        raise ValueError(f"unknown dtype code {code}")
    return Header(Op(op), DTYPES[code], call, step, piece, nbytes)


def encode_hello(rank: int, world_size: int, token: bytes) -> bytes:
    if len(token) > MAX_TOKEN_BYTES:
        raise ValueError(f"session token is {len(token)} bytes; at most {MAX_TOKEN_BYTES}")
    return _HELLO.pack(HELLO_MAGIC, VERSION, 0, rank, world_size, len(token)) + token


def decode_hello(buf: bytes | bytearray | memoryview) -> Hello:
    """Parse the fixed part of a hello (HELLO_BYTES long); the token bytes follow it."""
    if len(buf) != HELLO_BYTES:
        raise ValueError(f"hello is {len(buf)} bytes, expected {HELLO_BYTES}")
    magic, version, _, rank, world_size, token_bytes = _HELLO.unpack(buf)
    if magic != HELLO_MAGIC:
        raise ValueError(f"bad hello magic {bytes(magic)!r}: the peer is not a Galaxy ring rank")
    if version != VERSION:
        raise ValueError(f"hello version {version}, this rank speaks {VERSION}: upgrade both")
    if token_bytes > MAX_TOKEN_BYTES:
        raise ValueError(f"hello announces a {token_bytes}-byte token; at most {MAX_TOKEN_BYTES}")
    return Hello(rank, world_size, token_bytes)


def encode_shape(shape: tuple[int, ...] | torch.Size) -> bytes:
    if len(shape) > MAX_DIMS:
        raise ValueError(f"a tensor of {len(shape)} dimensions; at most {MAX_DIMS}")
    return struct.pack(f"<{len(shape)}q", *shape)


def decode_shape(buf: bytes | bytearray | memoryview) -> tuple[int, ...]:
    if len(buf) % 8 or len(buf) // 8 > MAX_DIMS:
        raise ValueError(f"a shape block of {len(buf)} bytes is not 0-{MAX_DIMS} int64 values")
    shape = struct.unpack(f"<{len(buf) // 8}q", buf)
    if any(d < 0 for d in shape):
        raise ValueError(f"negative dimension in shape {shape}")
    return tuple(shape)


def piece_bounds(n_elems: int, elem_bytes: int) -> list[tuple[int, int]]:
    """Cut a chunk of `n_elems` elements into pieces: [(start, stop)] in elements, in order.

    Both ends of a link call this with the same arguments, so pieces line up without being
    described on the wire. An empty chunk has no pieces (and so sends no frames).
    """
    if n_elems <= 0:
        return []
    nbytes = n_elems * elem_bytes
    by_max = -(-nbytes // MAX_PIECE_BYTES)
    by_min = -(-nbytes // MIN_PIECE_BYTES)
    count = min(n_elems, max(by_max, min(PIECES_PER_CHUNK, by_min)))
    base, extra = divmod(n_elems, count)
    bounds, start = [], 0
    for i in range(count):
        stop = start + base + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds
