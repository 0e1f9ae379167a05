"""`galaxy demo` before the gateway exists: real work on the packaged models, in-process.

1. verifies both packaged models (MiniLM encoder, SmolLM2 decoder) under Galaxy's hybrid plan
   with an uneven split against Hugging Face;
2. answers a household question with SmolLM2 split over the devices.
"""

from __future__ import annotations

from collections.abc import Iterator

from assistant.verify import parse_split, verify
from edge_worker.engine.generate import SamplingParams, chat
from edge_worker.engine.loader import from_hf
from edge_worker.engine.plan import make_plan
from edge_worker.engine.runtime import InProcessCluster
from edge_worker.models.catalog import load_model

SYSTEM = "You are Galaxy Home, a concise assistant that runs entirely inside the user's home."


def check_models(devices: int) -> Iterator[str]:
    """One line per packaged model: its hmp result against Hugging Face."""
    for name in ("minilm", "smollm2-135m"):
        n = min(devices, 3 if name == "smollm2-135m" else devices)
        r = verify(name, devices=n, split="uneven", strategy="hmp")
        tokens = "" if r.tokens_match is None else f", 20 greedy tokens identical: {r.tokens_match}"
        yield (
            f"{'ok  ' if r.passed else 'FAIL'} {name}: hmp over {n} devices, heads "
            f"{r.split.get('heads')}, MLP columns {r.split.get('mlp_columns')}, sequence "
            f"{r.split.get('seq')}: max |err| {r.max_abs_err:.2g} vs Hugging Face{tokens}"
        )


def answer(question: str, devices: int, max_tokens: int) -> tuple[str, str]:
    """SmolLM2's answer to `question`, computed with hmp over `devices` in-process devices."""
    loaded = load_model("smollm2-135m")
    cfg, weights = from_hf(loaded.model)
    n = min(devices, cfg.n_kv_heads)
    plan = make_plan(cfg, "hmp", parse_split("uneven", n))
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    with InProcessCluster(cfg, weights, plan) as cluster:
        text, gen = chat(
            cluster, loaded.tokenizer, messages, SamplingParams(max_new_tokens=max_tokens)
        )
    per_token = sum(gen.decode_ms) / max(1, len(gen.decode_ms))
    stats = (
        f"hmp on {n} devices, heads {list(plan.heads)}; prefill {gen.prefill_ms:.0f} ms, "
        f"{len(gen.tokens)} tokens at {per_token:.0f} ms each"
    )
    return text, stats
