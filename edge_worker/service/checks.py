"""What the worker checks before it acts on a message from the gateway, and how it takes in a
shard: wire data is validated with exceptions (never asserts), and every size is bounded by
what the plan can need before anything is allocated for it.

Each check raises `BadMessage(code, text)`; the worker answers it as an `Error` and carries on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from torch import Tensor

from edge_worker.engine.weights import ModelWeights, unflatten
from edge_worker.errors import GalaxyError, PlanError
from edge_worker.service import protocol as P
from edge_worker.service import tensors as wire
from edge_worker.service.store import ShardStore
from edge_worker.spec.config import ModelConfig
from edge_worker.spec.flops import layer_params
from edge_worker.spec.plan import ParallelPlan, plan_from_dict, validate

log = logging.getLogger(__name__)
MAX_BATCH = 64  # sequences in one run: the gateway batches at most 32 texts
MAX_TENSORS = 4096  # tensor frames one shard may announce


class BadMessage(GalaxyError):
    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code


def assignment(msg: P.Assign) -> tuple[ModelConfig, ParallelPlan]:
    """The model and plan of an Assign, checked against the ring it describes."""
    try:
        cfg = ModelConfig(**msg.config)
        plan = validate(cfg, plan_from_dict(msg.plan))
    except (GalaxyError, TypeError, ValueError, KeyError) as exc:
        raise BadMessage("bad_shard", f"cannot take assignment: {exc}") from None
    if plan.world_size != len(msg.peers) or msg.rank >= len(msg.peers):
        raise BadMessage(
            "bad_shard",
            f"rank {msg.rank} of a plan for {plan.world_size} devices, with {len(msg.peers)} peers",
        )
    if max(msg.shard_tensors, msg.full_tensors) > MAX_TENSORS:
        raise BadMessage("bad_shard", f"a shard of more than {MAX_TENSORS} tensors")
    return cfg, plan


def profile_config(msg: P.Profile, free_mb: float) -> ModelConfig:
    """The model a Profile asks to time, refused when one of its layers alone (fp32, with the
    copies the profiler cycles through) would not fit in a quarter of this device's free
    memory: a forged config must not make the worker allocate what it does not have."""
    try:
        cfg = ModelConfig(**msg.config)
    except (GalaxyError, TypeError, ValueError) as exc:
        raise BadMessage("bad_message", f"cannot profile this model: {exc}") from None
    layer_mb = 4 * layer_params(cfg, cfg.n_heads, cfg.intermediate_size) / 2**20
    scores_mb = 4 * cfg.n_heads * msg.seq * msg.seq / 2**20
    need = 2 * layer_mb + scores_mb + 64  # the layer, a copy, one score matrix, 64 MB cycled
    if need > free_mb / 4:
        raise BadMessage(
            "bad_message",
            f"profiling this model needs about {need:.0f} MB; this device has {free_mb:.0f} MB "
            "free: not profiling it",
        )
    return cfg


def ring_bound(cfg: ModelConfig) -> int:
    """The largest point-to-point tensor a plan of `cfg` sends on the ring: a pipeline stage's
    hidden states (batch, positions, hidden) in fp32."""
    return 4 * MAX_BATCH * cfg.max_positions * cfg.hidden_size


def run_inputs(cfg: ModelConfig, msg: P.Run) -> None:
    """A Run's token ids (and masks) fit the model: a rectangle of known tokens, not longer
    than the model's positions."""
    ids = msg.input_ids
    if not ids or not ids[0] or len(ids) > MAX_BATCH:
        raise BadMessage("bad_message", f"input_ids must be 1-{MAX_BATCH} non-empty rows")
    width = len(ids[0])
    if any(len(row) != width for row in ids):
        raise BadMessage("bad_message", "input_ids rows differ in length")
    limit = 1 if msg.op == "decode" else cfg.max_positions
    if width > limit:
        raise BadMessage("bad_message", f"{width} tokens per row; this {msg.op} takes {limit}")
    if any(not 0 <= t < cfg.vocab_size for row in ids for t in row):
        raise BadMessage("bad_message", f"a token id outside the vocabulary (0-{cfg.vocab_size})")
    for name, grid in (
        ("attention_mask", msg.attention_mask),
        ("token_type_ids", msg.token_type_ids),
    ):
        if grid is not None and (len(grid) != len(ids) or any(len(r) != width for r in grid)):
            raise BadMessage("bad_message", f"{name} is not the shape of input_ids")
    if msg.token_type_ids is not None and any(
        not 0 <= t < max(1, cfg.type_vocab_size) for row in msg.token_type_ids for t in row
    ):
        raise BadMessage("bad_message", "a token type outside the model's types")


async def receive_weights(
    recv: Callable[[], Awaitable[bytes]],
    store: ShardStore,
    who: str,
    digest: str,
    meta: dict[str, Any],
    count: int,
) -> ModelWeights:
    """A shard: from the store when `count` is 0 (cached), else `count` tensor frames from the
    link (`recv`: the next one), checked against `digest` and stored. The log shows the
    transfer as a bar. Hashing, writing and reading take seconds for a large model: off the
    event loop, which must keep answering the gateway's keepalive pings meanwhile."""
    if count == 0:
        if not store.has(digest):
            raise BadMessage("bad_shard", f"shard {digest} is neither sent nor cached")
        cached, stored_meta = await asyncio.to_thread(store.load, digest)
        return unflatten(cached, stored_meta)
    tensors: dict[str, Tensor] = {}
    received, shown = 0, -1
    for i in range(count):
        frame = await recv()
        try:
            name, t = wire.decode(frame)
        except ValueError as exc:
            raise BadMessage("bad_shard", f"a malformed tensor frame: {exc}") from None
        tensors[name] = t
        received += len(frame)
        if (tenth := 10 * (i + 1) // count) > shown:
            shown = tenth
            log.info(
                "%s: shard %s [%-10s] %3d%% (%d/%d tensors, %.1f MB)",
                who,
                digest[:8],
                "#" * tenth,
                100 * (i + 1) // count,
                i + 1,
                count,
                received / 2**20,
            )
    if await asyncio.to_thread(wire.content_hash, tensors, meta) != digest:
        raise BadMessage("bad_shard", f"shard {digest} arrived corrupted (hash mismatch)")
    await asyncio.to_thread(store.save, digest, tensors, meta)
    try:
        return unflatten(tensors, meta)
    except (KeyError, ValueError, TypeError, PlanError) as exc:
        raise BadMessage("bad_shard", f"the shard does not fit its metadata: {exc}") from None
