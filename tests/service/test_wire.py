"""Control messages and tensor frames as pure functions: round trips and clear rejections."""

from __future__ import annotations

import pytest
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


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"\x00\x00", "shorter than its length prefix"),
        (b"\x00\x00\xff\xff{}", "header length"),
        (b"\x00\x00\x00\x02{}", "malformed"),
    ],
)
def test_malformed_tensor_frames_are_rejected(frame: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        wire.decode(frame)


def test_truncated_payload_is_rejected() -> None:
    frame = wire.encode("x", torch.ones(4))

    with pytest.raises(ValueError, match="payload bytes"):
        wire.decode(frame[:-1])


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
        '{"type": "nonsense", "version": 1}',
        '{"type": "shutdown", "version": 1, "extra": true}',
        "not json",
    ],
)
def test_malformed_messages_are_rejected(text: str) -> None:
    with pytest.raises(ValidationError):
        P.parse(text)
