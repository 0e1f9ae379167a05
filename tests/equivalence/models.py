"""Small random-weight Hugging Face models, one per supported family, for equivalence tests.

Shape-only stand-ins for families with no packaged checkpoint (GPT-2, OPT, Qwen2, DistilBERT)
and for exercising awkward splits quickly; the packaged MiniLM and SmolLM2 are tested as well.
12 query heads (4 KV groups for the GQA families) allow splits like 1/2/9 heads of 12.
"""

from __future__ import annotations

from functools import cache

import torch
import transformers as T

FAMILIES = ("bert", "distilbert", "gpt2", "opt", "llama", "qwen2")
DECODERS = ("gpt2", "opt", "llama", "qwen2")


def _config(family: str) -> T.PretrainedConfig:
    common = {"vocab_size": 96}
    if family == "bert":
        return T.BertConfig(
            hidden_size=48,
            num_hidden_layers=4,
            num_attention_heads=12,
            intermediate_size=40,
            max_position_embeddings=64,
            **common,
        )
    if family == "distilbert":
        return T.DistilBertConfig(
            dim=48, n_layers=4, n_heads=12, hidden_dim=40, max_position_embeddings=64, **common
        )
    if family == "gpt2":
        return T.GPT2Config(
            n_embd=48,
            n_layer=4,
            n_head=12,
            n_inner=40,
            n_positions=64,
            bos_token_id=0,
            eos_token_id=1,
            **common,
        )
    if family == "opt":
        return T.OPTConfig(
            hidden_size=48,
            num_hidden_layers=4,
            num_attention_heads=12,
            ffn_dim=40,
            max_position_embeddings=64,
            word_embed_proj_dim=48,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=2,
            **common,
        )
    if family == "llama":
        return T.LlamaConfig(
            hidden_size=48,
            num_hidden_layers=4,
            num_attention_heads=12,
            num_key_value_heads=4,
            intermediate_size=40,
            max_position_embeddings=64,
            tie_word_embeddings=True,
            bos_token_id=0,
            eos_token_id=1,
            **common,
        )
    if family == "qwen2":
        return T.Qwen2Config(
            hidden_size=48,
            num_hidden_layers=4,
            num_attention_heads=12,
            num_key_value_heads=4,
            intermediate_size=40,
            max_position_embeddings=64,
            rope_theta=1e6,
            bos_token_id=0,
            eos_token_id=1,
            **common,
        )
    raise ValueError(family)


@cache
def tiny_model(family: str) -> T.PreTrainedModel:
    """A seeded random model of `family`, eager attention, fp32, eval mode."""
    torch.manual_seed(1234)
    cfg = _config(family)
    cfg._attn_implementation = "eager"
    cls = {
        "bert": T.BertModel,
        "distilbert": T.DistilBertModel,
        "gpt2": T.GPT2LMHeadModel,
        "opt": T.OPTForCausalLM,
        "llama": T.LlamaForCausalLM,
        "qwen2": T.Qwen2ForCausalLM,
    }[family]
    model = cls(cfg).eval()
    # Default init leaves biases and norms at 0/1; randomise them so a misplaced bias shows.
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 1:
                p.add_(torch.randn_like(p) * 0.1)
    return model


def reference(model: T.PreTrainedModel, ids: torch.Tensor) -> torch.Tensor:
    """Hugging Face's own output: logits for decoders, last hidden state for encoders."""
    with torch.inference_mode():
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids))
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


def assert_within_tolerance(got: torch.Tensor, ref: torch.Tensor) -> None:
    """max |got - ref| <= 1e-4 * max(1, max |ref|), the project's fp32 equivalence rule."""
    tol = 1e-4 * max(1.0, float(ref.abs().max()))
    torch.testing.assert_close(got, ref, atol=tol, rtol=0)
