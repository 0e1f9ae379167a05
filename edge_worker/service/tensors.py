"""Binary websocket frames for tensors (Sans-I/O: pure functions, no sockets).

A frame is a 4-byte big-endian header length, a JSON header {"name", "dtype", "shape"}, then
the tensor's raw bytes (C order). No pickle: a malformed frame raises ValueError.
"""

from __future__ import annotations

import hashlib
import json
import struct

import torch
from torch import Tensor

DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "int32": torch.int32,
}
NAMES = {v: k for k, v in DTYPES.items()}
MAX_HEADER = 4096


def encode(name: str, t: Tensor) -> bytes:
    t = t.detach().contiguous()
    if t.dtype not in NAMES:
        raise ValueError(f"tensor {name} has unsupported dtype {t.dtype}")
    header = json.dumps({"name": name, "dtype": NAMES[t.dtype], "shape": list(t.shape)}).encode()
    raw = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
    return struct.pack(">I", len(header)) + header + raw


def decode(frame: bytes) -> tuple[str, Tensor]:
    if len(frame) < 4:
        raise ValueError("tensor frame shorter than its length prefix")
    (hlen,) = struct.unpack(">I", frame[:4])
    if hlen > MAX_HEADER or 4 + hlen > len(frame):
        raise ValueError(f"tensor frame header length {hlen} is invalid")
    try:
        header = json.loads(frame[4 : 4 + hlen])
        name, dtype, shape = (
            header["name"],
            DTYPES[header["dtype"]],
            [int(s) for s in header["shape"]],
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"tensor frame header is malformed: {exc}") from None
    payload = frame[4 + hlen :]
    numel = 1
    for s in shape:
        if s < 0:
            raise ValueError(f"tensor {name} has a negative dimension")
        numel *= s
    expected = numel * torch.empty((), dtype=dtype).element_size()
    if len(payload) != expected:
        raise ValueError(f"tensor {name}: {len(payload)} payload bytes, shape needs {expected}")
    if numel == 0:
        return name, torch.empty(shape, dtype=dtype)
    t = torch.frombuffer(bytearray(payload), dtype=torch.uint8).view(dtype).reshape(shape)
    return name, t


def content_hash(tensors: dict[str, Tensor], meta: dict[str, object]) -> str:
    """A stable hash of named tensors and their metadata (the shard cache key)."""
    h = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        h.update(f"{name}:{NAMES.get(t.dtype, str(t.dtype))}:{list(t.shape)}".encode())
        if t.numel():
            h.update(t.view(torch.uint8).numpy().data)
    return h.hexdigest()[:32]
