"""`galaxy verify`: run a model under a parallel plan and compare with Hugging Face.

The reference is the `transformers` model itself on one device, in fp32: its last hidden state
(encoders) or logits at every prompt position (decoders), and for decoders the tokens its own
`generate` picks greedily. The engine passes when max |out - ref| <= 1e-4 * max(1, max |ref|)
and the generated tokens are identical, except where the reference's own top two logits at the
first differing step are within 1e-3 (a tie: reported, and not counted as a failure).

`wire` runs the plan with lossy activations on the wire (fp16, bf16, or int8 with a scale per
row: engine/wire.py). Their error is measured, not hidden: the tolerance becomes
`WIRE_TOLERANCE[wire]` (a bound on what was measured on the packaged models, DESIGN.md
section 6), and the greedy tokens must still match.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from edge_worker.engine.generate import SamplingParams, StepRunner, generate
from edge_worker.engine.loader import from_hf
from edge_worker.engine.runtime import InProcessCluster
from edge_worker.engine.weights import ModelWeights, tensor_bytes
from edge_worker.errors import PlanError
from edge_worker.models.catalog import LoadedModel, load_model
from edge_worker.spec.config import ModelConfig
from edge_worker.spec.plan import ParallelPlan, Strategy, make_plan

log = logging.getLogger(__name__)

TOLERANCE = 1e-4
WIRE_TOLERANCE = {"float32": TOLERANCE, "float16": 1e-2, "bfloat16": 5e-2, "int8": 1e-1}
WIRE_NAMES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "int8": "int8"}
TIE_GAP = 1e-3
SAMPLE_TEXT = (
    "Turn on the kitchen lights, set the living room to twenty one degrees, and tell me "
    "whether the back door is locked. Then remind me to water the plants tomorrow morning. "
)
SAMPLE_QUESTION = "What is a good temperature for a bedroom at night, and why?"


def parse_split(split: str, devices: int) -> list[float]:
    """`even`, `uneven` (1, 2, 3, ...) or explicit weights `a,b,c` -> one weight per device."""
    if split == "even":
        return [1.0] * devices
    if split == "uneven":
        return [float(i + 1) for i in range(devices)]
    try:
        weights = [float(x) for x in split.split(",")]
    except ValueError:
        raise PlanError(f"--split {split!r}: use even, uneven, or weights like 1,2,3") from None
    if len(weights) != devices:
        raise PlanError(f"--split {split!r} gives {len(weights)} weights for {devices} devices")
    return weights


@dataclass
class VerifyResult:
    model: str
    strategy: str
    transport: str
    wire: str
    devices: int
    split: dict[str, list[Any]]
    seq_len: int
    max_abs_err: float
    ref_scale: float
    tolerance: float
    tokens_match: bool | None
    tokens: list[int] | None
    ref_tokens: list[int] | None
    tie: dict[str, Any] | None
    shard_mb: list[float]
    passed: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def prompt_ids(loaded: LoadedModel, cfg: ModelConfig, seq_len: int | None) -> Tensor:
    """The verification input (1, T): a home request for packaged models, else seeded ids."""
    tok = loaded.tokenizer
    if tok is None:
        gen = torch.Generator().manual_seed(0)
        return torch.randint(0, cfg.vocab_size, (1, seq_len or 64), generator=gen)
    if seq_len is None and cfg.causal and getattr(tok, "chat_template", None):
        chat = [{"role": "user", "content": SAMPLE_QUESTION}]
        text = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        return torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
    text = SAMPLE_TEXT * (1 + (seq_len or 0) // 20)
    ids = tok(text)["input_ids"]
    return torch.tensor([ids[: seq_len or len(ids)]])


def describe_split(plan: ParallelPlan, seq_len: int) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    if plan.strategy in ("sp", "hmp"):
        out["seq"] = plan.seq_split(seq_len)
    if plan.heads:
        out["heads"], out["mlp_columns"] = list(plan.heads), list(plan.mlp_columns)
    if plan.layers:
        out["layers"] = list(plan.layers)
    return out


def verify(
    model: str,
    devices: int = 1,
    split: str = "even",
    strategy: Strategy = "hmp",
    transport: str = "inproc",
    seq_len: int | None = None,
    new_tokens: int = 20,
    decode: str = "tp",
    wire: str = "fp32",
) -> VerifyResult:
    if transport not in ("inproc", "tcp"):
        raise PlanError(f"transport {transport!r} is not available; use inproc or tcp")
    if wire not in WIRE_NAMES:
        raise PlanError(f"wire {wire!r} is not available; use {', '.join(WIRE_NAMES)}")
    wire_dtype = WIRE_NAMES[wire]
    loaded = load_model(model)
    cfg, weights = from_hf(loaded.model)
    weights_per_device = parse_split(split, devices)
    if strategy == "local":
        # One device runs everything: the one with the largest share (the fastest device).
        weights_per_device = [max(weights_per_device)]
    plan = make_plan(cfg, strategy, weights_per_device, decode=decode, wire_dtype=wire_dtype)
    ids = prompt_ids(loaded, cfg, seq_len)
    log.info("verifying %s: %s on %d devices, %d tokens", model, strategy, devices, ids.shape[1])
    with torch.inference_mode():
        ref_out = loaded.model(input_ids=ids, attention_mask=torch.ones_like(ids))
    ref = ref_out.logits if cfg.causal else ref_out.last_hidden_state
    with open_cluster(cfg, weights, plan, transport) as (cluster, shard_mb):
        out = cluster.prefill(ids, want="logits" if cfg.causal else "hidden")
        got = out.logits if cfg.causal else out.hidden
        assert got is not None
        err = float((got - ref).abs().max())
        scale = float(ref.abs().max())
        tokens = ref_tokens = tie = None
        if cfg.causal:
            tokens, ref_tokens, tie = _compare_generation(loaded, cluster, ids, new_tokens)
    match = None if tokens is None else tokens == ref_tokens
    tolerance = WIRE_TOLERANCE[wire_dtype] * max(1.0, scale)
    passed = err <= tolerance and (match is not False or tie is not None)
    return VerifyResult(
        model=model,
        strategy=strategy,
        transport=transport,
        wire=wire,
        devices=plan.world_size,
        split=describe_split(plan, ids.shape[1]),
        seq_len=ids.shape[1],
        max_abs_err=err,
        ref_scale=scale,
        tolerance=tolerance,
        tokens_match=match,
        tokens=tokens,
        ref_tokens=ref_tokens,
        tie=tie,
        shard_mb=shard_mb,
        passed=passed,
    )


@contextmanager
def open_cluster(
    cfg: ModelConfig, weights: ModelWeights, plan: ParallelPlan, transport: str
) -> Iterator[tuple[Any, list[float]]]:
    """The plan's ranks as in-process threads, or as worker processes on loopback (tcp)."""
    if transport == "inproc":
        with InProcessCluster(cfg, weights, plan) as local:
            yield local, [round(tensor_bytes(r.w) / 2**20, 1) for r in local.ranks]
        return
    from assistant.cluster.remote import local_workers

    with local_workers(plan.world_size) as (remote, names):
        readies = remote.deploy(cfg, weights, plan, names)
        yield remote, [round(r.shard_mb, 1) for r in readies]


def stop_ids(loaded: LoadedModel) -> frozenset[int]:
    """End-of-sequence ids from the model's generation config (none for random models)."""
    if not loaded.packaged:
        return frozenset()
    eos = getattr(loaded.model.generation_config, "eos_token_id", None)
    if eos is None and loaded.tokenizer is not None:
        eos = loaded.tokenizer.eos_token_id
    return frozenset([eos] if isinstance(eos, int) else (eos or []))


def reference_generate(loaded: LoadedModel, ids: Tensor, new_tokens: int) -> list[int]:
    """Greedy tokens from `transformers`' own `generate`."""
    stops = sorted(stop_ids(loaded))
    with torch.inference_mode():
        out = loaded.model.generate(  # type: ignore[operator]
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=new_tokens,
            do_sample=False,
            eos_token_id=stops or None,
            pad_token_id=stops[0] if stops else 0,
        )
    return [int(t) for t in out[0, ids.shape[1] :]]


def _compare_generation(
    loaded: LoadedModel, cluster: StepRunner, ids: Tensor, new_tokens: int
) -> tuple[list[int], list[int], dict[str, Any] | None]:
    params = SamplingParams(max_new_tokens=new_tokens, stop_ids=stop_ids(loaded))
    ours = generate(cluster, ids[0].tolist(), params).tokens
    ref = reference_generate(loaded, ids, new_tokens)
    if ours == ref:
        return ours, ref, None
    first = next((i for i, (a, b) in enumerate(zip(ours, ref, strict=False)) if a != b), None)
    if first is None:  # one is a prefix of the other: a length difference is a real failure
        return ours, ref, None
    prefix = torch.cat([ids, torch.tensor([ref[:first]], dtype=ids.dtype)], dim=1)
    with torch.inference_mode():
        logits = loaded.model(input_ids=prefix).logits[0, -1]
    top2 = torch.topk(logits, 2).values
    gap = float(top2[0] - top2[1])
    if gap <= TIE_GAP:
        return ours, ref, {"position": first, "top2_gap": gap}
    return ours, ref, None
