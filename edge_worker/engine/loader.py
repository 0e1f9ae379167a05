"""Map a Hugging Face model's weights into the engine, checking every name and shape.

`from_hf(model)` takes a `transformers` model object (duck-typed: `.config`, `.state_dict()`);
`convert(hf_config, state_dict)` does the same from its parts. Every source tensor must be used
or explicitly ignored, and every expected tensor must be present with the expected shape;
anything else raises `WeightMismatch`. Unsupported architectures raise `UnsupportedModel`
naming what is supported. This module does not import transformers.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from edge_worker.engine.weights import MLP, Attention, Layer, ModelWeights, Norm
from edge_worker.errors import UnsupportedModel, WeightMismatch
from edge_worker.spec.config import ModelConfig
from edge_worker.spec.hf_config import config_from_hf

# Tensors that exist in Hugging Face checkpoints but play no part in the engine's output.
IGNORED_SUFFIXES = (
    "pooler.dense.weight",
    "pooler.dense.bias",
    "position_ids",
    "token_type_ids",
    "rotary_emb.inv_freq",
    "rotary_emb.original_inv_freq",
    ".attn.bias",
    ".attn.masked_bias",
)


class _Source:
    """A state dict that records which tensors were taken, under an optional prefix."""

    def __init__(self, state: dict[str, Tensor], anchor: str) -> None:
        matches = [k for k in state if k.endswith(anchor)]
        if not matches:
            raise WeightMismatch(f"no tensor named *{anchor} in the checkpoint")
        self.prefix = matches[0][: -len(anchor)]
        self.state, self.used = state, set[str]()

    def has(self, name: str) -> bool:
        return self.prefix + name in self.state or name in self.state

    def take(self, name: str, shape: tuple[int, ...]) -> Tensor:
        key = self.prefix + name if self.prefix + name in self.state else name
        if key not in self.state:
            raise WeightMismatch(f"checkpoint lacks {self.prefix + name}, shape {shape}")
        t = self.state[key]
        if tuple(t.shape) != shape:
            raise WeightMismatch(f"{key} has shape {tuple(t.shape)}, expected {shape}")
        self.used.add(key)
        return t.detach().float()

    def maybe(self, name: str, shape: tuple[int, ...], present: bool) -> Tensor | None:
        """Take `name` when the config says it exists (strictly); None otherwise."""
        return self.take(name, shape) if present else None

    def finish(self) -> None:
        left = [k for k in self.state if k not in self.used and not k.endswith(IGNORED_SUFFIXES)]
        if left:
            raise WeightMismatch(
                f"{len(left)} checkpoint tensors have no place in the engine, e.g. {left[:4]}; "
                "the architecture has parts this engine does not implement"
            )


def from_hf(model: Any) -> tuple[ModelConfig, ModelWeights]:
    """Engine config and weights of a loaded `transformers` model (fp32 copies of the tensors)."""
    rotary = None
    for path in ("model.rotary_emb", "rotary_emb", "model.model.rotary_emb"):
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if obj is not None and hasattr(obj, "inv_freq"):
            rotary = (obj.inv_freq.detach().float(), float(getattr(obj, "attention_scaling", 1.0)))
            break
    return convert(model.config, model.state_dict(), rotary=rotary)


def convert(
    hf: Any, state: dict[str, Tensor], rotary: tuple[Tensor, float] | None = None
) -> tuple[ModelConfig, ModelWeights]:
    kind = config_from_hf(hf).family  # raises UnsupportedModel naming what is supported
    if kind == "bert":
        return _bert(hf, state)
    if kind == "distilbert":
        return _distilbert(hf, state)
    if kind == "gpt2":
        return _gpt2(hf, state)
    if kind == "opt":
        return _opt(hf, state)
    return _llama(hf, state, rotary)


def _norm(src: _Source, name: str, h: int, bias: bool = True) -> Norm:
    return Norm(src.take(f"{name}.weight", (h,)), src.take(f"{name}.bias", (h,)) if bias else None)


def _bert(hf: Any, state: dict[str, Tensor]) -> tuple[ModelConfig, ModelWeights]:
    cfg = config_from_hf(hf)
    h, f = cfg.hidden_size, cfg.intermediate_size
    src = _Source(state, "embeddings.word_embeddings.weight")
    layers = []
    for i in range(cfg.n_layers):
        p = f"encoder.layer.{i}."
        a = p + "attention.self."
        layers.append(
            Layer(
                attn=Attention(
                    wq=src.take(a + "query.weight", (h, h)),
                    bq=src.take(a + "query.bias", (h,)),
                    wk=src.take(a + "key.weight", (h, h)),
                    bk=src.take(a + "key.bias", (h,)),
                    wv=src.take(a + "value.weight", (h, h)),
                    bv=src.take(a + "value.bias", (h,)),
                    wo=src.take(p + "attention.output.dense.weight", (h, h)),
                    bo=src.take(p + "attention.output.dense.bias", (h,)),
                ),
                mlp=MLP(
                    w_up=src.take(p + "intermediate.dense.weight", (f, h)),
                    b_up=src.take(p + "intermediate.dense.bias", (f,)),
                    w_down=src.take(p + "output.dense.weight", (h, f)),
                    b_down=src.take(p + "output.dense.bias", (h,)),
                ),
                attn_norm=_norm(src, p + "attention.output.LayerNorm", h),
                mlp_norm=_norm(src, p + "output.LayerNorm", h),
            )
        )
    w = ModelWeights(
        layers=layers,
        tok_embeddings=src.take("embeddings.word_embeddings.weight", (cfg.vocab_size, h)),
        pos_embeddings=src.take("embeddings.position_embeddings.weight", (cfg.max_positions, h)),
        type_embeddings=src.take(
            "embeddings.token_type_embeddings.weight", (cfg.type_vocab_size, h)
        ),
        embed_norm=_norm(src, "embeddings.LayerNorm", h),
    )
    src.finish()
    return cfg, w


def _distilbert(hf: Any, state: dict[str, Tensor]) -> tuple[ModelConfig, ModelWeights]:
    cfg = config_from_hf(hf)
    h, f = cfg.hidden_size, cfg.intermediate_size
    src = _Source(state, "embeddings.word_embeddings.weight")
    layers = []
    for i in range(cfg.n_layers):
        p = f"transformer.layer.{i}."
        a = p + "attention."
        layers.append(
            Layer(
                attn=Attention(
                    wq=src.take(a + "q_lin.weight", (h, h)),
                    bq=src.take(a + "q_lin.bias", (h,)),
                    wk=src.take(a + "k_lin.weight", (h, h)),
                    bk=src.take(a + "k_lin.bias", (h,)),
                    wv=src.take(a + "v_lin.weight", (h, h)),
                    bv=src.take(a + "v_lin.bias", (h,)),
                    wo=src.take(a + "out_lin.weight", (h, h)),
                    bo=src.take(a + "out_lin.bias", (h,)),
                ),
                mlp=MLP(
                    w_up=src.take(p + "ffn.lin1.weight", (f, h)),
                    b_up=src.take(p + "ffn.lin1.bias", (f,)),
                    w_down=src.take(p + "ffn.lin2.weight", (h, f)),
                    b_down=src.take(p + "ffn.lin2.bias", (h,)),
                ),
                attn_norm=_norm(src, p + "sa_layer_norm", h),
                mlp_norm=_norm(src, p + "output_layer_norm", h),
            )
        )
    w = ModelWeights(
        layers=layers,
        tok_embeddings=src.take("embeddings.word_embeddings.weight", (cfg.vocab_size, h)),
        pos_embeddings=src.take("embeddings.position_embeddings.weight", (cfg.max_positions, h)),
        embed_norm=_norm(src, "embeddings.LayerNorm", h),
    )
    src.finish()
    return cfg, w


def _head(src: _Source, embed: Tensor, name: str) -> Tensor:
    """The output head, sharing the embedding tensor when the checkpoint ties them."""
    if not src.has(name):
        return embed
    key = src.prefix + name if src.prefix + name in src.state else name
    head = src.state[key]
    if head.data_ptr() == src.state[_embed_key(src)].data_ptr():
        src.used.add(key)
        return embed
    return src.take(name, tuple(embed.shape))


def _embed_key(src: _Source) -> str:
    return next(k for k in src.used if "embed_tokens" in k or "wte" in k)


def _gpt2(hf: Any, state: dict[str, Tensor]) -> tuple[ModelConfig, ModelWeights]:
    cfg = config_from_hf(hf)
    h, f = cfg.hidden_size, cfg.intermediate_size
    src = _Source(state, "wte.weight")
    layers = []
    for i in range(cfg.n_layers):
        p = f"h.{i}."
        # Conv1D stores (in, out): transpose to the Linear layout (out, in).
        qkv_w = src.take(p + "attn.c_attn.weight", (h, 3 * h)).t()
        qkv_b = src.take(p + "attn.c_attn.bias", (3 * h,))
        wq, wk, wv = (t.contiguous() for t in qkv_w.split(h, dim=0))
        bq, bk, bv = (t.contiguous() for t in qkv_b.split(h, dim=0))
        layers.append(
            Layer(
                attn=Attention(
                    wq=wq,
                    wk=wk,
                    wv=wv,
                    bq=bq,
                    bk=bk,
                    bv=bv,
                    wo=src.take(p + "attn.c_proj.weight", (h, h)).t().contiguous(),
                    bo=src.take(p + "attn.c_proj.bias", (h,)),
                ),
                mlp=MLP(
                    w_up=src.take(p + "mlp.c_fc.weight", (h, f)).t().contiguous(),
                    b_up=src.take(p + "mlp.c_fc.bias", (f,)),
                    w_down=src.take(p + "mlp.c_proj.weight", (f, h)).t().contiguous(),
                    b_down=src.take(p + "mlp.c_proj.bias", (h,)),
                ),
                attn_norm=_norm(src, p + "ln_1", h),
                mlp_norm=_norm(src, p + "ln_2", h),
            )
        )
    embed = src.take("wte.weight", (cfg.vocab_size, h))
    w = ModelWeights(
        layers=layers,
        tok_embeddings=embed,
        pos_embeddings=src.take("wpe.weight", (cfg.max_positions, h)),
        final_norm=_norm(src, "ln_f", h),
        lm_head=_head(src, embed, "lm_head.weight"),
    )
    src.finish()
    return cfg, w


def _opt(hf: Any, state: dict[str, Tensor]) -> tuple[ModelConfig, ModelWeights]:
    cfg = config_from_hf(hf)
    h, f, bias = cfg.hidden_size, cfg.intermediate_size, cfg.qkv_bias
    src = _Source(state, "decoder.embed_tokens.weight")
    layers = []
    for i in range(cfg.n_layers):
        p = f"decoder.layers.{i}."
        a = p + "self_attn."
        layers.append(
            Layer(
                attn=Attention(
                    wq=src.take(a + "q_proj.weight", (h, h)),
                    bq=src.maybe(a + "q_proj.bias", (h,), bias),
                    wk=src.take(a + "k_proj.weight", (h, h)),
                    bk=src.maybe(a + "k_proj.bias", (h,), bias),
                    wv=src.take(a + "v_proj.weight", (h, h)),
                    bv=src.maybe(a + "v_proj.bias", (h,), bias),
                    wo=src.take(a + "out_proj.weight", (h, h)),
                    bo=src.maybe(a + "out_proj.bias", (h,), bias),
                ),
                mlp=MLP(
                    w_up=src.take(p + "fc1.weight", (f, h)),
                    b_up=src.maybe(p + "fc1.bias", (f,), bias),
                    w_down=src.take(p + "fc2.weight", (h, f)),
                    b_down=src.maybe(p + "fc2.bias", (h,), bias),
                ),
                attn_norm=_norm(src, p + "self_attn_layer_norm", h),
                mlp_norm=_norm(src, p + "final_layer_norm", h),
            )
        )
    embed = src.take("decoder.embed_tokens.weight", (cfg.vocab_size, h))
    w = ModelWeights(
        layers=layers,
        tok_embeddings=embed,
        pos_embeddings=src.take("decoder.embed_positions.weight", (cfg.max_positions + 2, h)),
        final_norm=_norm(src, "decoder.final_layer_norm", h),
        lm_head=_head(src, embed, "lm_head.weight"),
    )
    src.finish()
    return cfg, w


def _llama(
    hf: Any, state: dict[str, Tensor], rotary: tuple[Tensor, float] | None
) -> tuple[ModelConfig, ModelWeights]:
    cfg = config_from_hf(hf)
    h, f, n, kv, hd = (
        cfg.hidden_size,
        cfg.intermediate_size,
        cfg.n_heads,
        cfg.n_kv_heads,
        cfg.head_dim,
    )
    qkv_bias, mlp_bias = cfg.qkv_bias, cfg.mlp_bias
    if rotary is None:
        rotary = (default_inv_freq(hf, cfg), 1.0)
    src = _Source(state, "embed_tokens.weight")
    layers = []
    for i in range(cfg.n_layers):
        p = f"layers.{i}."
        a = p + "self_attn."
        layers.append(
            Layer(
                attn=Attention(
                    wq=src.take(a + "q_proj.weight", (n * hd, h)),
                    wk=src.take(a + "k_proj.weight", (kv * hd, h)),
                    wv=src.take(a + "v_proj.weight", (kv * hd, h)),
                    wo=src.take(a + "o_proj.weight", (h, n * hd)),
                    bq=src.maybe(a + "q_proj.bias", (n * hd,), qkv_bias),
                    bk=src.maybe(a + "k_proj.bias", (kv * hd,), qkv_bias),
                    bv=src.maybe(a + "v_proj.bias", (kv * hd,), qkv_bias),
                    bo=src.maybe(a + "o_proj.bias", (h,), cfg.out_bias),
                ),
                mlp=MLP(
                    w_gate=src.take(p + "mlp.gate_proj.weight", (f, h)),
                    w_up=src.take(p + "mlp.up_proj.weight", (f, h)),
                    w_down=src.take(p + "mlp.down_proj.weight", (h, f)),
                    b_up=src.maybe(p + "mlp.up_proj.bias", (f,), mlp_bias),
                    b_down=src.maybe(p + "mlp.down_proj.bias", (h,), mlp_bias),
                ),
                attn_norm=Norm(src.take(p + "input_layernorm.weight", (h,)), None),
                mlp_norm=Norm(src.take(p + "post_attention_layernorm.weight", (h,)), None),
            )
        )
    embed = src.take("embed_tokens.weight", (cfg.vocab_size, h))
    w = ModelWeights(
        layers=layers,
        tok_embeddings=embed,
        final_norm=Norm(src.take("norm.weight", (h,)), None),
        lm_head=_head(src, embed, "lm_head.weight"),
        rope_inv_freq=rotary[0],
        rope_scaling=rotary[1],
    )
    src.finish()
    return cfg, w


def default_inv_freq(hf: Any, cfg: ModelConfig) -> Tensor:
    """RoPE inverse frequencies for the default rope type (other types need the loaded model)."""
    rope = getattr(hf, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") != "default":
        raise UnsupportedModel(f"rope type {rope.get('rope_type')!r} needs the loaded model")
    hd = cfg.head_dim
    return 1.0 / (cfg.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
