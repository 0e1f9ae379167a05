"""Binary websocket frames for tensors (Sans-I/O: pure functions, no sockets).

A frame is one tensor in the safetensors format: an 8-byte little-endian header length, a JSON
header ``{name: {"dtype", "shape", "data_offsets"}}`` padded with spaces to a multiple of 8
bytes, then the tensor's raw bytes (C order, little-endian). `encode` writes exactly the bytes
``safetensors.torch.save({name: t})`` writes, with one copy of the data instead of two; `decode`
reads any safetensors buffer holding one tensor (an optional ``__metadata__`` entry is ignored).

Frames come from a peer that is authenticated but not trusted to be bug-free: `decode` checks
the header's size, JSON, dtype, shape and offsets against the frame's own length before it
allocates the tensor, so a malformed frame raises ValueError and never allocates more than the
frame's size. No pickle.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct

import torch
from torch import Tensor

DTYPES = {  # safetensors' dtype codes of the dtypes that travel
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
}
CODES = {v: k for k, v in DTYPES.items()}
MAX_HEADER = 4096  # bytes: a one-tensor header is about 100
_PREFIX = struct.Struct("<Q")  # the header's length, as safetensors defines it
_METADATA = "__metadata__"


def encode(name: str, t: Tensor) -> bytes:
    """`t` (a CPU tensor of a dtype in `DTYPES`) as one safetensors frame named `name`."""
    t = t.detach().contiguous()
    if t.dtype not in CODES:
        raise ValueError(
            f"tensor {name} has dtype {t.dtype}; frames carry {sorted(map(str, CODES))}"
        )
    nbytes = t.numel() * t.element_size()
    entry = {"dtype": CODES[t.dtype], "shape": list(t.shape), "data_offsets": [0, nbytes]}
    header = json.dumps({name: entry}, separators=(",", ":"), ensure_ascii=False).encode()
    header += b" " * (-len(header) % 8)  # the data starts 8-byte aligned, as safetensors pads
    raw = t.reshape(-1).view(torch.uint8).numpy().data  # its own memory: join copies it once
    return b"".join((_PREFIX.pack(len(header)), header, raw))


def decode(frame: bytes) -> tuple[str, Tensor]:
    """The (name, tensor) in a one-tensor safetensors frame; ValueError if it is malformed.

    The tensor owns its memory (one copy out of `frame`) and is writable.
    """
    if len(frame) < _PREFIX.size:
        raise ValueError(f"tensor frame of {len(frame)} bytes is shorter than its length prefix")
    (hlen,) = _PREFIX.unpack_from(frame)
    if hlen > MAX_HEADER or _PREFIX.size + hlen > len(frame):
        raise ValueError(
            f"tensor frame header length {hlen} is invalid (frame {len(frame)} bytes, "
            f"headers at most {MAX_HEADER})"
        )
    start = _PREFIX.size + hlen
    name, dtype, shape, offsets = _parse_header(bytes(memoryview(frame)[_PREFIX.size : start]))
    expected = math.prod(shape) * dtype.itemsize
    payload = len(frame) - start
    if offsets != [0, expected] or payload != expected:
        raise ValueError(
            f"tensor {name}: {payload} payload bytes at offsets {offsets}, shape {shape} of "
            f"{dtype} needs {expected}"
        )
    if not expected:
        try:
            return name, torch.empty(shape, dtype=dtype)
        except (RuntimeError, TypeError) as exc:  # no elements, but a dimension past int64
            raise ValueError(f"tensor {name}: shape {shape} is not valid ({exc})") from None
    # One copy, of exactly `payload` bytes (checked above), into memory the tensor owns.
    t = torch.frombuffer(bytearray(memoryview(frame)[start:]), dtype=dtype).reshape(shape)
    return name, t


def _parse_header(text: bytes) -> tuple[str, torch.dtype, list[int], list[int]]:
    """(name, dtype, shape, data_offsets) of the one tensor a frame header describes."""
    try:
        header = json.loads(text)
        if not isinstance(header, dict):
            raise TypeError(f"a JSON object was expected, not {type(header).__name__}")
        entries = [(k, v) for k, v in header.items() if k != _METADATA]
        if len(entries) != 1:
            raise ValueError(f"{len(entries)} tensors, not 1")
        ((name, info),) = entries
        code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if code not in DTYPES:
            raise ValueError(f"dtype {code!r} is not one of {sorted(DTYPES)}")
        dtype = DTYPES[code]
        if not all(_is_count(s) for s in shape) or len(offsets) != 2:
            raise ValueError(f"shape {shape} or data_offsets {offsets} is not valid")
        if not all(_is_count(o) for o in offsets):
            raise ValueError(f"data_offsets {offsets} are not byte counts")
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        # RecursionError: deeply nested JSON within MAX_HEADER bytes.
        raise ValueError(f"tensor frame header is malformed: {exc!r}") from None
    return name, dtype, list(shape), list(offsets)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


_HASH_NAMES = {  # the dtype names the hash has always used (a changed hash re-sends shards)
    torch.float32: "float32",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
    torch.int64: "int64",
    torch.int32: "int32",
}


def content_hash(tensors: dict[str, Tensor], meta: dict[str, object]) -> str:
    """A stable hash of named tensors and their metadata (the shard cache key)."""
    h = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        h.update(f"{name}:{_HASH_NAMES.get(t.dtype, str(t.dtype))}:{list(t.shape)}".encode())
        if t.numel():
            h.update(t.view(torch.uint8).numpy().data)
    return h.hexdigest()[:32]
