"""The models a gateway serves: loaded once, converted into the engine's weights, and the
gateway's own in-process device for when no worker is online.

Only `assistant/cluster` touches the engine (DESIGN.md, section 1b): the rest of the gateway
asks this package for a model's config or runs requests through `inference.py`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from edge_worker.engine.loader import from_hf
from edge_worker.engine.runtime import InProcessCluster
from edge_worker.engine.weights import ModelWeights
from edge_worker.models.catalog import load_config, load_model
from edge_worker.spec.config import ModelConfig
from edge_worker.spec.hf_config import config_from_hf
from edge_worker.spec.plan import make_plan

log = logging.getLogger(__name__)


@dataclass
class ServedModel:
    name: str
    cfg: ModelConfig
    weights: ModelWeights
    tokenizer: Any  # a transformers tokenizer (None for -shape models)
    local: InProcessCluster | None = None  # the gateway's own device, built on first use

    def in_process(self) -> InProcessCluster:
        if self.local is None:
            self.local = InProcessCluster(
                self.cfg, self.weights, make_plan(self.cfg, "local", [1.0])
            )
        return self.local


def load_served(name: str) -> ServedModel:
    """Load `name` (an alias, a local path or a cached hub id) and convert it for the engine.
    Blocking: seconds for the packaged models (run it in a thread)."""
    loaded = load_model(name)
    cfg, weights = from_hf(loaded.model)
    log.info("serving %s (%s, %d layers)", name, cfg.family, cfg.n_layers)
    return ServedModel(name, cfg, weights, loaded.tokenizer)


def model_config(name: str) -> ModelConfig:
    """The engine config of `name` without loading its weights (for `galaxy plan`)."""
    return config_from_hf(load_config(name))


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sentence embeddings as sentence-transformers makes them: masked mean, L2-normalised."""
    m = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)  # (B, h)
    return torch.nn.functional.normalize(pooled, dim=-1)
