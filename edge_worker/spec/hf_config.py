"""Engine `ModelConfig`s from Hugging Face configs (no weights needed).

Used by the engine's loader, and by the planner to cost a model it has not loaded. Raises
`UnsupportedModel` for architectures or options the engine does not implement.
"""

from __future__ import annotations

from typing import Any

from edge_worker.errors import UnsupportedModel
from edge_worker.spec.config import Activation, ModelConfig

SUPPORTED = {
    "bert": "BERT encoders (BERT-Large, all-MiniLM-L6-v2)",
    "distilbert": "DistilBERT",
    "gpt2": "GPT-2",
    "opt": "OPT (pre-LN sizes: 125m, 1.3b and up)",
    "llama": "Llama-style decoders (Llama, SmolLM2)",
    "qwen2": "Qwen2 / Qwen2.5",
}


def config_from_hf(hf: Any) -> ModelConfig:
    kind = getattr(hf, "model_type", None)
    if kind not in SUPPORTED:
        raise UnsupportedModel(
            f"model type {kind!r} is not supported; supported: "
            + "; ".join(f"{k} ({v})" for k, v in SUPPORTED.items())
        )
    if kind == "bert":
        return _bert(hf)
    if kind == "distilbert":
        return _distilbert(hf)
    if kind == "gpt2":
        return _gpt2(hf)
    if kind == "opt":
        return _opt(hf)
    return _llama(hf)


def _act(name: str) -> Activation:
    table: dict[str, Activation] = {
        "gelu": "gelu",
        "gelu_new": "gelu_tanh",
        "gelu_pytorch_tanh": "gelu_tanh",
        "relu": "relu",
        "silu": "silu",
        "swish": "silu",
    }
    if name not in table:
        raise UnsupportedModel(f"activation {name!r} is not supported ({', '.join(table)})")
    return table[name]


def _bert(hf: Any) -> ModelConfig:
    if getattr(hf, "position_embedding_type", "absolute") != "absolute":
        raise UnsupportedModel("BERT with relative position embeddings is not supported")
    h, f, n = hf.hidden_size, hf.intermediate_size, hf.num_attention_heads
    return ModelConfig(
        family="bert",
        vocab_size=hf.vocab_size,
        hidden_size=h,
        n_layers=hf.num_hidden_layers,
        n_heads=n,
        n_kv_heads=n,
        intermediate_size=f,
        max_positions=hf.max_position_embeddings,
        activation=_act(hf.hidden_act),
        norm="layernorm",
        norm_eps=hf.layer_norm_eps,
        norm_placement="post",
        causal=False,
        type_vocab_size=hf.type_vocab_size,
        embed_norm=True,
        final_norm=False,
    )


def _distilbert(hf: Any) -> ModelConfig:
    h, f, n = hf.dim, hf.hidden_dim, hf.n_heads
    return ModelConfig(
        family="distilbert",
        vocab_size=hf.vocab_size,
        hidden_size=h,
        n_layers=hf.n_layers,
        n_heads=n,
        n_kv_heads=n,
        intermediate_size=f,
        max_positions=hf.max_position_embeddings,
        activation=_act(hf.activation),
        norm="layernorm",
        norm_eps=1e-12,
        norm_placement="post",
        causal=False,
        embed_norm=True,
        final_norm=False,
    )


def _gpt2(hf: Any) -> ModelConfig:
    if getattr(hf, "scale_attn_by_inverse_layer_idx", False):
        raise UnsupportedModel("GPT-2 with scale_attn_by_inverse_layer_idx is not supported")
    h, n = hf.n_embd, hf.n_head
    f = hf.n_inner or 4 * h
    return ModelConfig(
        family="gpt2",
        vocab_size=hf.vocab_size,
        hidden_size=h,
        n_layers=hf.n_layer,
        n_heads=n,
        n_kv_heads=n,
        intermediate_size=f,
        max_positions=hf.n_positions,
        activation=_act(hf.activation_function),
        norm="layernorm",
        norm_eps=hf.layer_norm_epsilon,
        norm_placement="pre",
        causal=True,
        lm_head=True,
    )


def _opt(hf: Any) -> ModelConfig:
    h, f, n = hf.hidden_size, hf.ffn_dim, hf.num_attention_heads
    if not hf.do_layer_norm_before or getattr(hf, "_remove_final_layer_norm", False):
        raise UnsupportedModel("OPT with post-LN layers (opt-350m) is not supported")
    if getattr(hf, "word_embed_proj_dim", h) != h:
        raise UnsupportedModel("OPT with project_in/project_out (opt-350m) is not supported")
    bias = getattr(hf, "enable_bias", True)
    return ModelConfig(
        family="opt",
        vocab_size=hf.vocab_size,
        hidden_size=h,
        n_layers=hf.num_hidden_layers,
        n_heads=n,
        n_kv_heads=n,
        intermediate_size=f,
        max_positions=hf.max_position_embeddings,
        activation=_act(hf.activation_function),
        norm="layernorm",
        norm_eps=1e-5,
        norm_placement="pre",
        causal=True,
        position_offset=2,
        qkv_bias=bias,
        out_bias=bias,
        mlp_bias=bias,
        lm_head=True,
    )


def _llama(hf: Any) -> ModelConfig:
    if getattr(hf, "use_sliding_window", False):
        raise UnsupportedModel("sliding-window attention is not supported")
    h, f, n = hf.hidden_size, hf.intermediate_size, hf.num_attention_heads
    kv = getattr(hf, "num_key_value_heads", None) or n
    hd = getattr(hf, "head_dim", None) or h // n
    qkv_bias = hf.model_type == "qwen2" or bool(getattr(hf, "attention_bias", False))
    mlp_bias = bool(getattr(hf, "mlp_bias", False))
    rope = getattr(hf, "rope_parameters", None) or {}
    theta = float(rope.get("rope_theta", getattr(hf, "rope_theta", 10000.0)))
    return ModelConfig(
        family="llama",
        vocab_size=hf.vocab_size,
        hidden_size=h,
        n_layers=hf.num_hidden_layers,
        n_heads=n,
        n_kv_heads=kv,
        intermediate_size=f,
        max_positions=hf.max_position_embeddings,
        activation=_act(hf.hidden_act),
        norm="rmsnorm",
        norm_eps=hf.rms_norm_eps,
        norm_placement="pre",
        causal=True,
        positions="rope",
        gated_mlp=True,
        qkv_bias=qkv_bias,
        out_bias=hf.model_type != "qwen2" and qkv_bias,
        mlp_bias=mlp_bias,
        lm_head=True,
        rope_theta=theta,
        head_dim=hd,
    )
