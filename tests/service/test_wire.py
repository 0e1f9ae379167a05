"""Control messages and tensor frames as pure functions: round trips and clear rejections."""

from __future__ import annotations

import json
import struct

import pytest
import safetensors.torch
import torch
from pydantic import ValidationError

from edge_worker.service import protocol as P
from edge_worker.service import tensors as wire


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.int64])
def test_tensor_frame_round_trip(dtype: torch.dtype) -> None:
    t = (torch.randn(3, 5, 7) * 10).to(dtype)

    name, back = wire.decode(wire.encode("layers.0.attn.wq", t))

    assert name == "layers.0.attn.wq"
    assert back.dtype == dtype
    assert torch.equal(back, t)


def test_empty_tensor_frame_round_trip() -> None:
    _, back = wire.decode(wire.encode("empty", torch.zeros(2, 0)))

    assert back.shape == (2, 0)


def test_a_scalar_tensor_frame_round_trips() -> None:
    name, back = wire.decode(wire.encode("scale", torch.tensor(2.5)))

    assert (name, back.shape, back.item()) == ("scale", (), 2.5)


def test_a_tensor_frame_is_what_safetensors_writes_and_reads() -> None:
    t = torch.randn(3, 5)

    frame = wire.encode("layers.0.attn.wq", t)

    assert frame == safetensors.torch.save({"layers.0.attn.wq": t})
    assert torch.equal(safetensors.torch.load(frame)["layers.0.attn.wq"], t)


def test_a_safetensors_buffer_with_metadata_decodes() -> None:
    t = torch.arange(6, dtype=torch.int32).view(2, 3)

    name, back = wire.decode(safetensors.torch.save({"ids": t}, metadata={"note": "hi"}))

    assert name == "ids"
    assert torch.equal(back, t)


def header_only(header: object) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"\x00\x00", "shorter than its length prefix"),
        (struct.pack("<Q", 2**40) + b"{}", "header length"),
        (struct.pack("<Q", 2) + b"{}", "malformed"),
        (header_only([1, 2]), "malformed"),
        (header_only({"a": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}}), "F64"),
        (header_only({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}), "shape"),
        (
            header_only({"a": {"dtype": "F32", "shape": [0, 2**64], "data_offsets": [0, 0]}}),
            "shape",
        ),
        (struct.pack("<Q", 4000) + b"[" * 2000 + b"]" * 2000, "malformed"),
    ],
    ids=[
        "short",
        "huge-header",
        "no-tensor",
        "not-object",
        "dtype",
        "negative",
        "huge-dim",
        "nested",
    ],
)
def test_malformed_tensor_frames_are_rejected(frame: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        wire.decode(frame)


def test_truncated_payload_is_rejected() -> None:
    frame = wire.encode("x", torch.ones(4))

    with pytest.raises(ValueError, match="payload bytes"):
        wire.decode(frame[:-1])


def test_a_frame_claiming_more_data_than_it_holds_allocates_nothing() -> None:
    huge = {"x": {"dtype": "F32", "shape": [2**20, 2**20], "data_offsets": [0, 2**42]}}

    with pytest.raises(ValueError, match="4 payload bytes"):
        wire.decode(header_only(huge) + b"\x00" * 4)  # 4 TiB would be allocated if trusted


def test_content_hash_depends_on_values_and_names() -> None:
    a = {"w": torch.ones(3)}

    assert wire.content_hash(a, {}) == wire.content_hash({"w": torch.ones(3)}, {})
    assert wire.content_hash(a, {}) != wire.content_hash({"w": torch.zeros(3)}, {})
    assert wire.content_hash(a, {}) != wire.content_hash({"v": torch.ones(3)}, {})


def test_messages_round_trip_through_json() -> None:
    run = P.Run(run_id=3, plan_id="p1", op="prefill", want="logits", input_ids=[[1, 2, 3]])

    assert P.parse(run.model_dump_json()) == run


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "run"}',
        f'{{"type": "nonsense", "version": {P.VERSION}}}',
        f'{{"type": "shutdown", "version": {P.VERSION}, "extra": true}}',
        "not json",
    ],
)
def test_malformed_messages_are_rejected(text: str) -> None:
    with pytest.raises(ValidationError):
        P.parse(text)
