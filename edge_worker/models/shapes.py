"""Random-weight models with the real architectures, for benchmarks (the ``-shape`` aliases).

``shape_config(alias, num_layers)`` returns the Hugging Face config of a well-known model (the
dimensions of its published ``config.json``), optionally with fewer layers.
``build_shape_model(alias, ...)`` instantiates it in float32 with seeded random weights
(``torch.manual_seed(seed)`` inside a forked RNG, so the caller's RNG state is left alone), eager
attention, in ``.eval()`` mode. Decoders are the ``*ForCausalLM`` class, encoders the bare model.

Construction skips PyTorch's own per-module initialisation, which Hugging Face's ``init_weights``
overwrites anyway (it halves build time); the skipped tensors are filled with NaN so that any
parameter Hugging Face does *not* re-initialise is caught, and the model is then rebuilt the slow
way. This patches ``torch.nn.init`` process-wide for the duration of the constructor, as
transformers' own ``no_init_weights`` does.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edge_worker.errors import ModelNotAvailable

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShapeSpec:
    """How to build the config of one ``-shape`` alias."""

    description: str
    config_class: str  # a class exported by ``transformers``
    model_class: str  # likewise: *ForCausalLM for decoders, the bare model for encoders
    is_decoder: bool
    num_layers: int  # the real model's layer count
    layer_keys: tuple[str, ...]  # config fields set to the layer count
    kwargs: Mapping[str, Any] = field(default_factory=dict)


SHAPES: dict[str, ShapeSpec] = {
    "bert-large-shape": ShapeSpec(
        "BERT-Large encoder (hidden 1024, 24 layers, 16 heads); random weights, for benchmarks",
        "BertConfig",
        "BertModel",
        is_decoder=False,
        num_layers=24,
        layer_keys=("num_hidden_layers",),
        kwargs={
            "vocab_size": 30522,
            "hidden_size": 1024,
            "num_attention_heads": 16,
            "intermediate_size": 4096,
            "max_position_embeddings": 512,
            "type_vocab_size": 2,
            "hidden_act": "gelu",
            "layer_norm_eps": 1e-12,
        },
    ),
    "distilbert-shape": ShapeSpec(
        "DistilBERT-base encoder (dim 768, 6 layers, 12 heads); random weights, for benchmarks",
        "DistilBertConfig",
        "DistilBertModel",
        is_decoder=False,
        num_layers=6,
        layer_keys=("n_layers",),
        kwargs={
            "vocab_size": 30522,
            "dim": 768,
            "n_heads": 12,
            "hidden_dim": 3072,
            "max_position_embeddings": 512,
            "activation": "gelu",
        },
    ),
    "gpt2-large-shape": ShapeSpec(
        "GPT-2 Large decoder (n_embd 1280, 36 layers, 20 heads); random weights, for benchmarks",
        "GPT2Config",
        "GPT2LMHeadModel",
        is_decoder=True,
        num_layers=36,
        layer_keys=("n_layer",),
        kwargs={
            "vocab_size": 50257,
            "n_embd": 1280,
            "n_head": 20,
            "n_positions": 1024,
            "activation_function": "gelu_new",
            "layer_norm_epsilon": 1e-5,
        },
    ),
    "opt-1.3b-shape": ShapeSpec(
        "OPT-1.3B decoder (hidden 2048, 24 layers, 32 heads); random weights, for benchmarks",
        "OPTConfig",
        "OPTForCausalLM",
        is_decoder=True,
        num_layers=24,
        layer_keys=("num_hidden_layers",),
        kwargs={
            "vocab_size": 50272,
            "hidden_size": 2048,
            "num_attention_heads": 32,
            "ffn_dim": 8192,
            "max_position_embeddings": 2048,
            "do_layer_norm_before": True,
            "word_embed_proj_dim": 2048,
            "activation_function": "relu",
            "enable_bias": True,
        },
    ),
    "qwen2.5-0.5b-shape": ShapeSpec(
        "Qwen2.5-0.5B decoder (hidden 896, 24 layers, 14 heads / 2 KV heads); random weights, "
        "for benchmarks",
        "Qwen2Config",
        "Qwen2ForCausalLM",
        is_decoder=True,
        num_layers=24,
        layer_keys=("num_hidden_layers", "max_window_layers"),
        kwargs={
            "vocab_size": 151936,
            "hidden_size": 896,
            "num_attention_heads": 14,
            "num_key_value_heads": 2,
            "intermediate_size": 4864,
            "hidden_act": "silu",
            "max_position_embeddings": 32768,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0},
            "tie_word_embeddings": True,
            "use_sliding_window": False,
            "bos_token_id": 151643,
            "eos_token_id": 151643,
        },
    ),
    "smollm2-135m-shape": ShapeSpec(
        "SmolLM2-135M (Llama) decoder (hidden 576, 30 layers, 9 heads / 3 KV heads); random "
        "weights, for benchmarks",
        "LlamaConfig",
        "LlamaForCausalLM",
        is_decoder=True,
        num_layers=30,
        layer_keys=("num_hidden_layers",),
        kwargs={
            "vocab_size": 49152,
            "hidden_size": 576,
            "num_attention_heads": 9,
            "num_key_value_heads": 3,
            "intermediate_size": 1536,
            "hidden_act": "silu",
            "max_position_embeddings": 8192,
            "rms_norm_eps": 1e-5,
            "rope_parameters": {"rope_type": "default", "rope_theta": 100_000.0},
            "tie_word_embeddings": True,
            "bos_token_id": 1,
            "eos_token_id": 2,
        },
    ),
}


def shape_config(alias: str, num_layers: int | None = None) -> PretrainedConfig:
    """The config of a ``-shape`` alias, with ``num_layers`` layers if given (else the real count).

    Raises ``ModelNotAvailable`` for a name that is not a ``-shape`` alias, ``ValueError`` for
    ``num_layers < 1``.
    """
    spec = SHAPES.get(alias)
    if spec is None:
        raise ModelNotAvailable(
            f"{alias!r} is not a shape alias; choose one of {', '.join(SHAPES)}"
        )
    if num_layers is not None and num_layers < 1:
        raise ValueError(f"num_layers must be at least 1, got {num_layers}")
    import transformers

    layers = spec.num_layers if num_layers is None else num_layers
    config_class = getattr(transformers, spec.config_class)
    config: PretrainedConfig = config_class(**spec.kwargs, **dict.fromkeys(spec.layer_keys, layers))
    return config


def build_shape_model(
    alias: str, *, num_layers: int | None = None, seed: int = 0
) -> PreTrainedModel:
    """A ``-shape`` alias with seeded random float32 weights, eager attention, in eval mode."""
    config = shape_config(alias, num_layers)
    spec = SHAPES[alias]
    started = time.perf_counter()
    model = _instantiate(config, spec, seed, fast=True)
    if not _all_finite(model):
        logger.warning(
            "%s: some parameter is not initialised by transformers' init_weights; rebuilding with "
            "PyTorch's default initialisation (slower)",
            alias,
        )
        model = _instantiate(config, spec, seed, fast=False)
        if not _all_finite(model):
            raise RuntimeError(f"{alias}: random initialisation produced non-finite weights")
    logger.info(
        "built %s (%d layers, %.1f M parameters) in %.2f s",
        alias,
        config.num_hidden_layers,
        sum(p.numel() for p in model.parameters()) / 1e6,
        time.perf_counter() - started,
    )
    return model


def _instantiate(
    config: PretrainedConfig, spec: ShapeSpec, seed: int, *, fast: bool
) -> PreTrainedModel:
    import torch
    import transformers
    import transformers.initialization
    from transformers import AutoModel, AutoModelForCausalLM

    # Import the modelling code *before* patching torch.nn.init: transformers saves references to
    # the real initialisers when transformers.initialization is first imported, and a module
    # imported under the patch would keep the NaN filler for good.
    getattr(transformers, spec.model_class)
    auto_class = AutoModelForCausalLM if spec.is_decoder else AutoModel
    skip = _torch_init_filled_with_nan() if fast else contextlib.nullcontext()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with skip:
            model = auto_class.from_config(config, dtype=torch.float32, attn_implementation="eager")
    if type(model).__name__ != spec.model_class:
        raise RuntimeError(
            f"expected {spec.model_class}, transformers built {type(model).__name__}"
        )
    return model.eval()


# The initialisers PyTorch modules call from their constructors (reset_parameters).
_TORCH_INITS = ("uniform_", "normal_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_",
                "xavier_normal_", "trunc_normal_", "constant_", "zeros_", "ones_")  # fmt: skip


@contextlib.contextmanager
def _torch_init_filled_with_nan() -> Iterator[None]:
    """Make ``torch.nn.init`` fill with NaN instead of drawing random numbers.

    Hugging Face's ``init_weights`` (run at the end of the constructor) calls its own saved copies
    of the real initialisers, so every parameter it covers still gets proper random values.
    """
    import torch
    import torch.nn.init as nn_init

    def fill_nan(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        with torch.no_grad():
            return tensor.fill_(float("nan"))

    saved = {name: getattr(nn_init, name) for name in _TORCH_INITS if hasattr(nn_init, name)}
    try:
        for name in saved:
            setattr(nn_init, name, fill_nan)
        yield
    finally:
        for name, function in saved.items():
            setattr(nn_init, name, function)


def _all_finite(model: PreTrainedModel) -> bool:
    """No NaN left by the filler: a NaN anywhere makes the tensor's sum NaN (and a sum is cheap)."""
    import torch

    seen: set[int] = set()
    for tensor in model.state_dict().values():
        if not tensor.is_floating_point() or tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        if not bool(torch.isfinite(tensor.sum())):
            return False
    return True
